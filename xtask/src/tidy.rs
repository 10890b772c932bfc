//! Tidy: repository invariants, checked by `cargo xtask tidy` (step 3 of
//! `cargo xtask test`) and as `#[test]` functions of this crate, so a plain
//! `cargo test --workspace` enforces them too.
//!
//! 1. Every `.rs` file under crates/, tests/, xtask/ and bench/ starts with
//!    `//!` module docs (its first non-empty line).
//! 2. Arrows point down only: every `evloop*` edge in a member's
//!    `[dependencies]`, `[dev-dependencies]` or `[build-dependencies]` is in
//!    the layering table of DESIGN.md / STYLE.md §4 ([`allowed_deps`]); a leaf
//!    crate never takes the facade `evloop` as a dev-dependency.
//! 3. No placeholder macros and no ignored tests in crates/, tests/, xtask/
//!    (the needles are built with `concat!` so this file passes itself).
//! 4. The crates that promise `#![forbid(unsafe_code)]` have it at the root.
//!
//! Crates that do not exist yet are skipped, not reported. Manifests are read
//! with a deliberately small TOML reader (section headers and `key = value`
//! lines), enough for Cargo.toml files written the usual way.

use std::fs;
use std::path::{Path, PathBuf};

/// Runs every tidy check over the workspace at `root`.
///
/// # Errors
///
/// Every violation found, one per line.
pub(crate) fn run(root: &Path) -> Result<(), String> {
    let mut problems = Vec::new();
    problems.extend(check_file_docs(root));
    problems.extend(check_layering(root));
    problems.extend(check_no_placeholders(root));
    problems.extend(check_forbid_unsafe(root));
    if problems.is_empty() {
        println!("tidy: ok");
        Ok(())
    } else {
        Err(format!(
            "tidy found {} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        ))
    }
}

// ---------------------------------------------------------------------------
// 1. `//!` docs on every file

/// The trees whose `.rs` files must start with `//!`.
const DOC_TREES: &[&str] = &["crates", "tests", "xtask", "bench"];

fn check_file_docs(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for file in rust_files(root, DOC_TREES) {
        let text = match fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) => {
                problems.push(format!("{}: unreadable: {e}", rel(root, &file)));
                continue;
            }
        };
        if !starts_with_module_docs(&text) {
            problems.push(format!(
                "{}: the first non-empty line must be `//!` module docs (say what the file owns)",
                rel(root, &file)
            ));
        }
    }
    problems
}

fn starts_with_module_docs(text: &str) -> bool {
    text.trim_start_matches('\u{feff}')
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .is_some_and(|line| line.starts_with("//!"))
}

// ---------------------------------------------------------------------------
// 2. Layering

/// Which `evloop*` packages a package may depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Allowed {
    /// Exactly these (possibly none).
    Only(&'static [&'static str]),
    /// Any workspace crate (benchmarks compare everything).
    Anything,
}

/// The layering table (DESIGN.md "Layers", STYLE.md §4), or `None` for a
/// package that is not placed in it yet.
pub(crate) fn allowed_deps(package: &str) -> Option<Allowed> {
    const ALL_LIBRARIES: &[&str] = &[
        "evloop-reactor",
        "evloop-timers",
        "evloop-executor",
        "evloop-core",
        "evloop-transports",
        "evloop-tls",
        "evloop-signals",
        "evloop-process",
    ];
    let allowed = match package {
        "evloop-reactor" | "evloop-timers" | "evloop-executor" | "xtask" => Allowed::Only(&[]),
        "evloop-core" => Allowed::Only(&["evloop-reactor", "evloop-timers"]),
        "evloop-transports" => Allowed::Only(&["evloop-core", "evloop-reactor", "evloop-timers"]),
        "evloop-tls" => Allowed::Only(&["evloop-transports", "evloop-core", "evloop-reactor"]),
        "evloop-signals" => Allowed::Only(&["evloop-core", "evloop-reactor"]),
        "evloop-process" => Allowed::Only(&[
            "evloop-transports",
            "evloop-signals",
            "evloop-core",
            "evloop-reactor",
            "evloop-timers",
        ]),
        "evloop" => Allowed::Only(ALL_LIBRARIES),
        "evloop-conformance" => Allowed::Only(&["evloop"]),
        "evloop-bench" => Allowed::Anything,
        // `cargo xtask bench process`: evloop-process beside tokio::process.
        "process-spawn-bench" => Allowed::Anything,
        // The echo benchmark's client and comparison servers stand apart
        // from evloop (bench/, driven by `cargo xtask bench`).
        "evloop-loadgen" | "raw-epoll-echo" | "tokio-echo-bench" | "tokio-rustls-echo-bench" => {
            Allowed::Only(&[])
        }
        _ => return None,
    };
    Some(allowed)
}

/// The facade, which no leaf crate may take even as a dev-dependency.
const FACADE: &str = "evloop";

/// Packages above the facade, which may use it.
const ABOVE_FACADE: &[&str] = &["evloop", "evloop-conformance", "evloop-bench"];

/// The kind of a dependency section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DepKind {
    Normal,
    Dev,
    Build,
}

impl DepKind {
    fn section(self) -> &'static str {
        match self {
            DepKind::Normal => "[dependencies]",
            DepKind::Dev => "[dev-dependencies]",
            DepKind::Build => "[build-dependencies]",
        }
    }
}

/// One dependency of a manifest: the real package name (after a
/// `package = "..."` rename) and where it was declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dep {
    pub(crate) name: String,
    pub(crate) kind: DepKind,
    /// 1-based line number in the manifest.
    pub(crate) line: usize,
}

/// What tidy needs from a Cargo.toml.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// `[package] name`.
    pub(crate) package: Option<String>,
    /// Every dependency in every dependency section (target-specific ones
    /// included).
    pub(crate) deps: Vec<Dep>,
    /// `[workspace] members`.
    pub(crate) members: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Section {
    Package,
    Workspace,
    /// `[dependencies]`, `[target.'cfg(..)'.dev-dependencies]`, ...
    Deps(DepKind),
    /// `[dependencies.NAME]`: the dep was pushed at this index of `deps`.
    DepTable(usize),
    Other,
}

/// Parses the parts of a Cargo.toml that tidy needs.
///
/// Handles section headers (including `[target.'cfg(..)'.dependencies]` and
/// `[dependencies.NAME]`), `name.workspace = true`, `name = { .. }` (with
/// `package = ".."` renames), `name = ".."`, comments, and multi-line arrays.
pub(crate) fn parse_manifest(text: &str) -> Manifest {
    let mut manifest = Manifest::default();
    let mut section = Section::Other;
    // Inside a multi-line array value: its open-bracket depth, and whether
    // it is `[workspace] members` (whose strings we collect).
    let mut open_array: Option<(i32, bool)> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = strip_comment(raw).trim();
        if let Some((depth, collect)) = open_array {
            if collect {
                manifest.members.extend(quoted_strings(line));
            }
            let depth = depth + bracket_balance(line);
            open_array = (depth > 0).then_some((depth, collect));
            continue;
        }
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            section = parse_header(line, index + 1, &mut manifest.deps);
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let value = value.trim();
        let depth = bracket_balance(value);
        let is_members = section == Section::Workspace && key == "members";
        if is_members {
            manifest.members.extend(quoted_strings(value));
        }
        if depth > 0 {
            open_array = Some((depth, is_members));
        }
        match section {
            Section::Package if key == "name" => manifest.package = Some(unquote(value)),
            Section::Deps(kind) => {
                let declared = split_dotted(key).into_iter().next().unwrap_or_default();
                let name = inline_table_value(value, "package").unwrap_or(declared);
                manifest.deps.push(Dep {
                    name,
                    kind,
                    line: index + 1,
                });
            }
            Section::DepTable(at) if key == "package" => manifest.deps[at].name = unquote(value),
            _ => {}
        }
    }
    manifest
}

fn parse_header(line: &str, line_no: usize, deps: &mut Vec<Dep>) -> Section {
    let inner = line
        .trim_start_matches('[')
        .split(']')
        .next()
        .unwrap_or_default();
    let parts = split_dotted(inner);
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let (kind_and_name, _target) = match parts.as_slice() {
        ["target", target, rest @ ..] => (rest, Some(*target)),
        all => (all, None),
    };
    match kind_and_name {
        ["package"] => Section::Package,
        ["workspace"] => Section::Workspace,
        [kind] => dep_kind(kind).map_or(Section::Other, Section::Deps),
        [kind, name] => match dep_kind(kind) {
            Some(kind) => {
                deps.push(Dep {
                    name: (*name).to_owned(),
                    kind,
                    line: line_no,
                });
                Section::DepTable(deps.len() - 1)
            }
            None => Section::Other,
        },
        _ => Section::Other,
    }
}

fn dep_kind(word: &str) -> Option<DepKind> {
    match word {
        "dependencies" => Some(DepKind::Normal),
        "dev-dependencies" | "dev_dependencies" => Some(DepKind::Dev),
        "build-dependencies" | "build_dependencies" => Some(DepKind::Build),
        _ => None,
    }
}

/// Drops a `#` comment that is not inside a string.
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match quote {
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Splits `a.b."c.d"` into `a`, `b`, `c.d`, trimming each part.
fn split_dotted(key: &str) -> Vec<String> {
    split_outside_quotes(key, '.')
        .into_iter()
        .map(|part| unquote(&part))
        .collect()
}

/// Splits at `sep` where it is outside quotes and brackets.
fn split_outside_quotes(text: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut depth = 0_i32;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '[' || c == '{' => depth += 1,
            None if c == ']' || c == '}' => depth -= 1,
            None if c == sep && depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts
}

/// `"x"` or `'x'` → `x`; anything else is trimmed and returned as is.
fn unquote(text: &str) -> String {
    let text = text.trim();
    for q in ['"', '\''] {
        if let Some(inner) = text.strip_prefix(q).and_then(|rest| rest.strip_suffix(q)) {
            return inner.to_owned();
        }
    }
    text.to_owned()
}

/// The value of `key` inside an inline table `{ a = 1, key = "v" }`.
fn inline_table_value(value: &str, key: &str) -> Option<String> {
    let inner = value
        .trim()
        .strip_prefix('{')?
        .trim_end()
        .strip_suffix('}')?;
    split_outside_quotes(inner, ',')
        .into_iter()
        .find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (unquote(k) == key).then(|| unquote(v))
        })
}

/// Open minus close square brackets outside strings.
fn bracket_balance(text: &str) -> i32 {
    let mut quote: Option<char> = None;
    let mut balance = 0;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '[' => balance += 1,
            None if c == ']' => balance -= 1,
            _ => {}
        }
    }
    balance
}

/// Every `"..."` string in `text`.
fn quoted_strings(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Checks `manifest` (of the member at `path`) against the layering table.
pub(crate) fn layering_problems(path: &str, manifest: &Manifest) -> Vec<String> {
    let Some(package) = manifest.package.as_deref() else {
        return vec![format!("{path}: no [package] name")];
    };
    let Some(allowed) = allowed_deps(package) else {
        return vec![format!(
            "{path}: package `{package}` is not in the layering table; place it in \
             DESIGN.md \"Layers\" and in xtask/src/tidy.rs `allowed_deps`"
        )];
    };
    let Allowed::Only(ok) = allowed else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    for dep in manifest
        .deps
        .iter()
        .filter(|d| d.name.starts_with("evloop"))
    {
        if ok.contains(&dep.name.as_str()) {
            continue;
        }
        let place = format!("{path}:{}", dep.line);
        if dep.name == FACADE && dep.kind == DepKind::Dev && !ABOVE_FACADE.contains(&package) {
            problems.push(format!(
                "{place}: leaf crate `{package}` takes the facade `{FACADE}` as a dev-dependency \
                 (that builds a second copy of `{package}`); test through `{package}`'s own API"
            ));
        } else {
            let may = if ok.is_empty() {
                "no evloop crate".to_owned()
            } else {
                ok.join(", ")
            };
            problems.push(format!(
                "{place}: `{package}` -> `{}` in {} points up or across the layers; \
                 `{package}` may depend on: {may}",
                dep.name,
                dep.kind.section()
            ));
        }
    }
    problems
}

fn check_layering(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for manifest_path in member_manifests(root) {
        let shown = rel(root, &manifest_path);
        match fs::read_to_string(&manifest_path) {
            Ok(text) => problems.extend(layering_problems(&shown, &parse_manifest(&text))),
            Err(e) => problems.push(format!("{shown}: unreadable: {e}")),
        }
    }
    problems
}

/// The Cargo.toml of every workspace member that exists, plus any crate
/// under crates/ or bench/ that is not a member yet (it will be soon).
fn member_manifests(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Ok(text) = fs::read_to_string(root.join("Cargo.toml")) {
        for member in parse_manifest(&text).members {
            match member.strip_suffix("/*") {
                Some(parent) => dirs.extend(subdirs(&root.join(parent))),
                None => dirs.push(root.join(member)),
            }
        }
    }
    dirs.extend(subdirs(&root.join("crates")));
    dirs.push(root.join("bench"));
    dirs.extend(subdirs(&root.join("bench")));
    let mut manifests: Vec<PathBuf> = dirs
        .into_iter()
        .map(|dir| dir.join("Cargo.toml"))
        .filter(|path| path.is_file())
        .collect();
    manifests.sort();
    manifests.dedup();
    manifests
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_dir() && !is_skipped_dir(path))
        .collect();
    dirs.sort();
    dirs
}

// ---------------------------------------------------------------------------
// 3. No placeholders, no ignored tests

/// The trees searched for placeholders and ignored tests.
const PLACEHOLDER_TREES: &[&str] = &["crates", "tests", "xtask"];

/// Built with `concat!` so that this file does not contain them.
const PLACEHOLDER_MACROS: &[&str] = &[concat!("todo", "!("), concat!("unimplemented", "!(")];
const IGNORE_ATTR: &str = concat!("#[", "ignore");

fn check_no_placeholders(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for file in rust_files(root, PLACEHOLDER_TREES) {
        let Ok(text) = fs::read_to_string(&file) else {
            continue; // reported by the docs check
        };
        for (line_no, what) in placeholder_lines(&text) {
            problems.push(format!(
                "{}:{line_no}: {what} (a stub is not done; an ignored test proves nothing)",
                rel(root, &file)
            ));
        }
    }
    problems
}

/// `(line number, what)` for each placeholder macro or ignored test.
fn placeholder_lines(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        for needle in PLACEHOLDER_MACROS {
            if line.contains(needle) {
                found.push((index + 1, format!("`{needle}..)`")));
            }
        }
        let mut rest = line;
        while let Some(at) = rest.find(IGNORE_ATTR) {
            let after = &rest[at + IGNORE_ATTR.len()..];
            if after.starts_with([']', ' ', '=']) {
                found.push((index + 1, format!("`{IGNORE_ATTR}]`")));
                break;
            }
            rest = after;
        }
    }
    found
}

// ---------------------------------------------------------------------------
// 4. forbid(unsafe_code)

/// `(package, its directory, its root file)` for the crates that promise
/// `#![forbid(unsafe_code)]`.
const FORBID_UNSAFE: &[(&str, &str, &str)] = &[
    ("evloop-timers", "crates/evloop-timers", "src/lib.rs"),
    ("evloop-executor", "crates/evloop-executor", "src/lib.rs"),
    ("evloop-core", "crates/evloop-core", "src/lib.rs"),
    ("evloop", "crates/evloop", "src/lib.rs"),
    ("evloop-conformance", "tests", "src/lib.rs"),
    ("xtask", "xtask", "src/main.rs"),
];

fn check_forbid_unsafe(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for (package, dir, file) in FORBID_UNSAFE {
        let dir = root.join(dir);
        if !dir.join("Cargo.toml").is_file() {
            continue; // not written yet
        }
        let path = dir.join(file);
        let shown = rel(root, &path);
        match fs::read_to_string(&path) {
            Ok(text) if forbids_unsafe(&text) => {}
            Ok(_) => problems.push(format!(
                "{shown}: `{package}` must say `#![forbid(unsafe_code)]` (DESIGN.md \"Layers\")"
            )),
            Err(e) => problems.push(format!("{shown}: `{package}` has no readable root: {e}")),
        }
    }
    problems
}

/// Whether `text` has a `#![forbid(..)]` inner attribute naming `unsafe_code`.
fn forbids_unsafe(text: &str) -> bool {
    text.lines().any(|line| {
        let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
        compact
            .strip_prefix("#![forbid(")
            .and_then(|rest| rest.strip_suffix(")]"))
            .is_some_and(|lints| lints.split(',').any(|lint| lint == "unsafe_code"))
    })
}

// ---------------------------------------------------------------------------
// Files

/// Every `.rs` file under the existing `trees` of `root`, sorted, skipping
/// `target/` and hidden directories.
fn rust_files(root: &Path, trees: &[&str]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for tree in trees {
        collect_rust_files(&root.join(tree), &mut files);
    }
    files.sort();
    files
}

fn collect_rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if !is_skipped_dir(&path) {
                collect_rust_files(&path, files);
            }
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

fn is_skipped_dir(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name == "target" || name.starts_with('.'))
}

/// `path` relative to `root`, for messages.
fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(problems: &[String]) {
        assert!(
            problems.is_empty(),
            "tidy found {} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
    }

    // The invariants, checked on the real tree.

    #[test]
    fn every_rs_file_starts_with_module_docs() {
        ok(&check_file_docs(&crate::workspace_root()));
    }

    #[test]
    fn arrows_point_down_only() {
        ok(&check_layering(&crate::workspace_root()));
    }

    #[test]
    fn no_placeholders_or_ignored_tests() {
        ok(&check_no_placeholders(&crate::workspace_root()));
    }

    #[test]
    fn unsafe_is_forbidden_where_promised() {
        ok(&check_forbid_unsafe(&crate::workspace_root()));
    }

    // The checks themselves, on small inline inputs.

    fn names(manifest: &Manifest) -> Vec<(&str, DepKind)> {
        manifest
            .deps
            .iter()
            .map(|d| (d.name.as_str(), d.kind))
            .collect()
    }

    #[test]
    fn parses_package_and_dependency_forms() {
        let manifest = parse_manifest(
            r#"
[package]
name = "evloop-signals" # trailing comment
version.workspace = true

[dependencies]
evloop-core.workspace = true
"evloop-reactor" = { workspace = true, features = ["a", "b"] }
libc = "0.2"
renamed = { package = "evloop-timers", version = "0.1" }
# evloop-tls.workspace = true

[dev-dependencies]
evloop.workspace = true
rustix = { workspace = true, features = [
    "pipe", "fs",
] }

[target.'cfg(unix)'.build-dependencies]
evloop-process = { path = "../evloop-process" }

[dependencies.evloop-executor]
workspace = true

[dependencies.alias]
package = "evloop-transports"
version = "0.1"

[[test]]
name = "not-a-package"

[lints]
workspace = true
"#,
        );
        assert_eq!(manifest.package.as_deref(), Some("evloop-signals"));
        assert_eq!(
            names(&manifest),
            vec![
                ("evloop-core", DepKind::Normal),
                ("evloop-reactor", DepKind::Normal),
                ("libc", DepKind::Normal),
                ("evloop-timers", DepKind::Normal),
                ("evloop", DepKind::Dev),
                ("rustix", DepKind::Dev),
                ("evloop-process", DepKind::Build),
                ("evloop-executor", DepKind::Normal),
                ("evloop-transports", DepKind::Normal),
            ]
        );
        assert_eq!(manifest.deps[0].line, 7);
    }

    #[test]
    fn parses_workspace_members_and_ignores_workspace_dependencies() {
        let manifest = parse_manifest(
            r#"
[workspace]
resolver = "2"
# a comment with "quotes"
members = [
    "crates/evloop-reactor", # bottom
    "crates/evloop",
    "tests",
]

[workspace.dependencies]
evloop-core = { path = "crates/evloop-core", version = "0.1.0" }
"#,
        );
        assert_eq!(manifest.package, None);
        assert_eq!(
            manifest.members,
            vec!["crates/evloop-reactor", "crates/evloop", "tests"]
        );
        assert!(manifest.deps.is_empty());
        let one_line = parse_manifest("[workspace]\nmembers = [\"a\", \"b\"]\n");
        assert_eq!(one_line.members, vec!["a", "b"]);
    }

    fn manifest(package: &str, deps: &[(&str, DepKind)]) -> Manifest {
        Manifest {
            package: Some(package.to_owned()),
            deps: deps
                .iter()
                .enumerate()
                .map(|(i, (name, kind))| Dep {
                    name: (*name).to_owned(),
                    kind: *kind,
                    line: i + 1,
                })
                .collect(),
            members: Vec::new(),
        }
    }

    #[test]
    fn downward_edges_pass() {
        use DepKind::{Dev, Normal};
        let cases = [
            manifest(
                "evloop-core",
                &[
                    ("evloop-reactor", Normal),
                    ("evloop-timers", Normal),
                    ("libc", Normal),
                ],
            ),
            manifest(
                "evloop-signals",
                &[("evloop-core", Normal), ("evloop-reactor", Dev)],
            ),
            manifest(
                "evloop",
                &[
                    ("evloop-core", Normal),
                    ("evloop-executor", Normal),
                    ("evloop-process", Normal),
                ],
            ),
            manifest("evloop-conformance", &[("evloop", Normal), ("evloop", Dev)]),
            manifest(
                "evloop-bench",
                &[("evloop", Normal), ("evloop-core", Normal)],
            ),
            manifest("xtask", &[]),
        ];
        for case in &cases {
            assert_eq!(layering_problems("Cargo.toml", case), Vec::<String>::new());
        }
    }

    #[test]
    fn upward_and_skipping_edges_fail() {
        use DepKind::{Build, Normal};
        let cases = [
            manifest("evloop-timers", &[("evloop-core", Normal)]),
            manifest("evloop-reactor", &[("evloop-timers", Build)]),
            manifest("evloop-executor", &[("evloop-core", Normal)]),
            manifest("evloop-core", &[("evloop-signals", Normal)]),
            manifest("evloop-signals", &[("evloop-timers", Normal)]),
            manifest("evloop-conformance", &[("evloop-core", Normal)]),
            manifest("xtask", &[("evloop", Normal)]),
        ];
        for case in &cases {
            let problems = layering_problems("Cargo.toml", case);
            assert_eq!(problems.len(), 1, "{case:?}");
            assert!(problems[0].contains("points up or across"), "{problems:?}");
        }
    }

    #[test]
    fn leaf_crates_never_take_the_facade_as_a_dev_dependency() {
        let problems = layering_problems(
            "crates/evloop-core/Cargo.toml",
            &manifest("evloop-core", &[("evloop", DepKind::Dev)]),
        );
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("crates/evloop-core/Cargo.toml:1: leaf crate"));
    }

    #[test]
    fn unknown_packages_must_be_placed() {
        let problems = layering_problems("x/Cargo.toml", &manifest("evloop-new", &[]));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("not in the layering table"));
    }

    #[test]
    fn module_docs_detection() {
        assert!(starts_with_module_docs("//! Docs.\nfn f() {}\n"));
        assert!(starts_with_module_docs("\n\n   //! Docs.\n"));
        assert!(!starts_with_module_docs("// Comment.\n//! Docs.\n"));
        assert!(!starts_with_module_docs(
            "#![forbid(unsafe_code)]\n//! Docs.\n"
        ));
        assert!(!starts_with_module_docs(""));
    }

    #[test]
    fn placeholder_detection() {
        let text = [
            "fn a() {}",
            concat!("fn b() { todo", "!() }"),
            concat!("fn c() { unimplemented", "!(\"x\") }"),
            concat!("#[", "ignore]"),
            concat!("#[", "ignore = \"slow\"]"),
            "#[ignored_not_an_attr]",
            "let todo = 1;",
        ]
        .join("\n");
        let lines: Vec<usize> = placeholder_lines(&text).iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![2, 3, 4, 5]);
    }

    #[test]
    fn forbid_detection() {
        assert!(forbids_unsafe("//! Docs.\n#![forbid(unsafe_code)]\n"));
        assert!(forbids_unsafe("#![forbid( missing_docs, unsafe_code )]"));
        assert!(!forbids_unsafe("#![deny(unsafe_code)]"));
        assert!(!forbids_unsafe("// #![forbid(unsafe_code)] some day"));
        assert!(!forbids_unsafe("#![forbid(unsafe_op_in_unsafe_fn)]"));
    }

    #[test]
    fn comments_and_quotes() {
        assert_eq!(strip_comment(r#"a = "x#y" # c"#), r#"a = "x#y" "#);
        assert_eq!(
            strip_comment("[target.'cfg(a#b)'.dependencies]"),
            "[target.'cfg(a#b)'.dependencies]"
        );
        assert_eq!(
            split_dotted("target.'cfg(all(unix, x.y))'.dependencies").len(),
            3
        );
        assert_eq!(
            inline_table_value(r#"{ version = "1", package = "evloop-core" }"#, "package"),
            Some("evloop-core".to_owned())
        );
        assert_eq!(inline_table_value(r#""0.1""#, "package"), None);
    }
}
