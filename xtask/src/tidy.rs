//! Tidy: repository invariants, checked by `cargo xtask tidy` (step 3 of
//! `cargo xtask test`) and as `#[test]` functions of this crate, so a plain
//! `cargo test --workspace` enforces them too.
//!
//! 1. Every `.rs` file under crates/, python/, tests/, xtask/, bench/ and fuzz/
//!    starts with `//!` module docs (its first non-empty line).
//! 2. Arrows point down only: every `evloop*` edge in a member's
//!    `[dependencies]`, `[dev-dependencies]` or `[build-dependencies]` is in
//!    the layering table of docs/architecture.md ([`allowed_deps`]); a leaf
//!    crate never takes the facade `evloop` as a dev-dependency. No external
//!    edge the architecture forbids: tokio only under bench/, evloop-timers
//!    std-only. Every crate under crates/ and bench/ is a workspace member.
//! 3. No placeholder macros and no ignored tests in crates/, python/,
//!    tests/, xtask/, fuzz/ (the needles are built with `concat!` so this file passes itself).
//! 4. The crates that promise `#![forbid(unsafe_code)]` have it at the root.
//! 5. No unused dependency in any member's Cargo.toml ([`unused_deps`]).
//! 6. No reference to a file outside the repository ([`outside_refs`]).
//!
//! Crates that do not exist yet are skipped, not reported. Manifests are read
//! by cargo (`cargo metadata`, see [`manifests`]), never by hand.

mod manifests;
mod outside_refs;
mod unused_deps;

use std::fs;
use std::path::{Path, PathBuf};

use manifests::{DepKind, Manifest};

/// Runs every tidy check over the workspace at `root`.
///
/// # Errors
///
/// Every violation found, one per line.
pub(crate) fn run(root: &Path) -> Result<(), String> {
    let mut problems = Vec::new();
    problems.extend(check_file_docs(root));
    match manifests::load(root) {
        Ok(manifests) => {
            problems.extend(check_layering(&manifests, root));
            problems.extend(unused_deps::check(root, &manifests));
        }
        Err(e) => problems.push(e),
    }
    problems.extend(check_no_placeholders(root));
    problems.extend(check_forbid_unsafe(root));
    problems.extend(outside_refs::check(root));
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
const DOC_TREES: &[&str] = &["crates", "python", "tests", "xtask", "bench", "fuzz"];

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

/// The layering table (docs/architecture.md, code map), or `None` for a
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
        // Test support below every crate (tests/testkit): it takes none.
        TESTKIT => Allowed::Only(&[]),
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
        // The Python binding (python/): the facade and the libraries under
        // it, whose Python shells it builds.
        "evloop-python" => Allowed::Only(&[
            "evloop",
            "evloop-reactor",
            "evloop-timers",
            "evloop-executor",
            "evloop-core",
            "evloop-transports",
            "evloop-tls",
            "evloop-signals",
            "evloop-process",
        ]),
        "evloop-conformance" => Allowed::Only(&["evloop", TESTKIT]),
        // The fuzz harness (fuzz/harness): the leaf crates it fuzzes, never
        // the facade.
        "evloop-fuzz" => Allowed::Only(&[
            "evloop-core",
            "evloop-timers",
            "evloop-transports",
            "evloop-signals",
            "evloop-tls",
        ]),
        // The fault-injection property test (tests/faults): the transports
        // with their seam, and TLS and subprocesses above them.
        "evloop-fault-tests" => Allowed::Only(&[
            "evloop-core",
            "evloop-transports",
            "evloop-tls",
            "evloop-process",
            TESTKIT,
        ]),
        "evloop-bench" => Allowed::Anything,
        // `cargo xtask bench process`: evloop-process beside tokio::process.
        "process-spawn-bench" => Allowed::Anything,
        // The echo benchmark's client and comparison servers stand apart
        // from evloop (bench/, driven by `cargo xtask bench`).
        "evloop-loadgen" | "raw-epoll-echo" | "tokio-echo-bench" | "tokio-rustls-echo-bench" => {
            Allowed::Only(&[])
        }
        // `cargo xtask netem` and `soak`: the userspace netem link and the
        // clients; the load generator's TLS config and certificates reused.
        "evloop-netsoak" => Allowed::Only(&["evloop-loadgen"]),
        _ => return None,
    };
    Some(allowed)
}

/// The shared test support, which any crate may take as a dev-dependency:
/// it sits below every layer and depends on no evloop crate.
const TESTKIT: &str = "evloop-testkit";

/// The facade, which no leaf crate may take even as a dev-dependency.
const FACADE: &str = "evloop";

/// Packages above the facade, which may use it.
const ABOVE_FACADE: &[&str] = &[
    "evloop",
    "evloop-python",
    "evloop-conformance",
    "evloop-bench",
];

/// Checks `manifest` (of the member at `path`) against the layering table.
pub(crate) fn layering_problems(path: &str, manifest: &Manifest) -> Vec<String> {
    let package = manifest.package.as_str();
    let Some(allowed) = allowed_deps(package) else {
        return vec![format!(
            "{path}: package `{package}` is not in the layering table; place it in \
             docs/architecture.md (code map) and in xtask/src/tidy.rs `allowed_deps`"
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
        if ok.contains(&dep.name.as_str()) || (dep.name == TESTKIT && dep.kind == DepKind::Dev) {
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

fn check_layering(manifests: &[Manifest], root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for manifest in manifests {
        problems.extend(layering_problems(&rel(root, &manifest.path), manifest));
        problems.extend(external_problems(&rel(root, &manifest.path), manifest));
    }
    problems.extend(non_members(root, manifests));
    problems
}

/// External dependencies the architecture forbids: tokio (and its family)
/// anywhere outside bench/, and any normal dependency of evloop-timers,
/// which is std-only (docs/architecture.md).
fn external_problems(path: &str, manifest: &Manifest) -> Vec<String> {
    let package = manifest.package.as_str();
    let in_bench = path.starts_with("bench/");
    let mut problems = Vec::new();
    for dep in &manifest.deps {
        let place = format!("{path}:{}", dep.line);
        if !in_bench && dep.name.starts_with("tokio") {
            problems.push(format!(
                "{place}: `{package}` -> `{}`: tokio is a benchmark baseline only, never a \
                 dependency of the evloop crates",
                dep.name
            ));
        } else if package == "evloop-timers" && dep.kind == DepKind::Normal {
            problems.push(format!(
                "{place}: `evloop-timers` -> `{}`: evloop-timers is std-only \
                 (docs/architecture.md)",
                dep.name
            ));
        }
    }
    problems
}

/// Crates under crates/ or bench/ that are not workspace members: cargo
/// would refuse to build them, and tidy would not see their manifests.
fn non_members(root: &Path, manifests: &[Manifest]) -> Vec<String> {
    let members: Vec<&Path> = manifests.iter().map(|m| m.path.as_path()).collect();
    let mut candidates = Vec::new();
    for tree in ["crates", "bench", "bench/servers"] {
        let Ok(entries) = fs::read_dir(root.join(tree)) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let manifest = entry.path().join("Cargo.toml");
            if manifest.is_file() && !is_skipped_dir(&entry.path()) {
                candidates.push(manifest);
            }
        }
    }
    candidates.sort();
    candidates
        .into_iter()
        .filter(|c| !members.contains(&c.as_path()))
        .map(|c| {
            format!(
                "{}: not a workspace member; list it in the root Cargo.toml's `members`",
                rel(root, &c)
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------
// 3. No placeholders, no ignored tests

/// The trees searched for placeholders and ignored tests.
const PLACEHOLDER_TREES: &[&str] = &["crates", "python", "tests", "xtask", "fuzz"];

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
    ("evloop-fuzz", "fuzz/harness", "src/lib.rs"),
    ("evloop-testkit", "tests/testkit", "src/lib.rs"),
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
                "{shown}: `{package}` must say `#![forbid(unsafe_code)]` (docs/architecture.md)"
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
    let mut all = Vec::new();
    collect_files(dir, &mut all);
    files.extend(
        all.into_iter()
            .filter(|path| path.extension().is_some_and(|ext| ext == "rs")),
    );
}

/// Every file under `dir`, skipping `target/` and hidden directories.
fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) {
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
                collect_files(&path, files);
            }
        } else {
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

    fn workspace() -> (PathBuf, Vec<Manifest>) {
        let root = crate::workspace_root();
        let manifests = manifests::load(&root).expect("cargo metadata");
        (root, manifests)
    }

    #[test]
    fn arrows_point_down_only() {
        let (root, manifests) = workspace();
        ok(&check_layering(&manifests, &root));
    }

    #[test]
    fn no_unused_dependencies() {
        let (root, manifests) = workspace();
        ok(&unused_deps::check(&root, &manifests));
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

    fn manifest(package: &str, deps: &[(&str, DepKind)]) -> Manifest {
        Manifest {
            package: package.to_owned(),
            deps: deps
                .iter()
                .enumerate()
                .map(|(i, (name, kind))| manifests::Dep {
                    name: (*name).to_owned(),
                    ident: name.replace('-', "_"),
                    kind: *kind,
                    line: i + 1,
                })
                .collect(),
            ..Manifest::default()
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
            manifest("evloop-conformance", &[("evloop-testkit", Normal)]),
            manifest("evloop-transports", &[("evloop-testkit", Dev)]),
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
            // The test support is a dev-dependency of the libraries only,
            // and itself takes no evloop crate.
            manifest("evloop-transports", &[("evloop-testkit", Normal)]),
            manifest("evloop-testkit", &[("evloop-reactor", Normal)]),
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
    fn forbidden_external_edges_fail() {
        use DepKind::{Dev, Normal};
        let tokio = manifest("evloop-core", &[("tokio", Dev)]);
        let problems = external_problems("crates/evloop-core/Cargo.toml", &tokio);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("tokio is a benchmark baseline only"));
        let timers = manifest("evloop-timers", &[("libc", Normal), ("proptest", Dev)]);
        let problems = external_problems("crates/evloop-timers/Cargo.toml", &timers);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("std-only"), "{problems:?}");
        let bench = manifest("tokio-echo-bench", &[("tokio", Normal)]);
        assert!(external_problems("bench/servers/tokio-echo/Cargo.toml", &bench).is_empty());
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
}
