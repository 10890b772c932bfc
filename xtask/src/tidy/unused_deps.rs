//! Unused dependencies, the way `cargo machete` finds them: a dependency is
//! used when its name as the code spells it (the key it is declared under,
//! `-` → `_`) appears in the package's Rust sources as the start of a path
//! (`name::`), in `use name` or in `extern crate name`.
//!
//! The sources are every `.rs` file under the package's directory: src/,
//! tests/, benches/, examples/, build.rs and any other target directory
//! (a nested package's directory is its own). Plain `//` comments do not
//! count; doc comments do, since doc tests compile them. Dev-dependencies
//! are searched the same way: a dev-dependency can only compile in test
//! code, doc tests, tests/, benches/ and examples/, so a hit anywhere is a
//! real use.
//!
//! A dependency that is needed without being named (one that only turns on
//! a feature of another crate, say) is kept with a comment in the manifest:
//! `# tidy: allow-unused NAME (why)`. An allow without a reason, or for a
//! dependency that is in fact used or not declared, is reported too.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::manifests::Manifest;
use super::{collect_rust_files, rel};

/// The marker of an allow comment in a Cargo.toml.
const ALLOW: &str = "tidy: allow-unused";

/// The problems of every manifest: unused dependencies and bad allows.
pub(crate) fn check(root: &Path, manifests: &[Manifest]) -> Vec<String> {
    let dirs: Vec<PathBuf> = manifests.iter().map(|m| m.dir().to_path_buf()).collect();
    let mut problems = Vec::new();
    for manifest in manifests {
        let sources = package_sources(manifest.dir(), &dirs);
        let used = used_idents(&sources, manifest);
        problems.extend(problems_of(&rel(root, &manifest.path), manifest, &used));
    }
    problems
}

/// The problems of one manifest, given which dependency names its sources
/// use.
pub(crate) fn problems_of(
    shown: &str,
    manifest: &Manifest,
    used: &BTreeSet<String>,
) -> Vec<String> {
    let (allows, mut problems) = allow_comments(shown, &manifest.text);
    let mut reported = BTreeSet::new();
    for dep in &manifest.deps {
        let allowed = allows
            .iter()
            .any(|(name, _)| *name == dep.name || *name == dep.ident);
        if used.contains(&dep.ident) || allowed || !reported.insert((&dep.ident, dep.kind)) {
            continue;
        }
        problems.push(format!(
            "{shown}:{}: `{}` in {} is never used in `{}`'s sources (no `{}::`, `use {}` or \
             `extern crate {}`); remove it, or keep it with `# {ALLOW} {} (why)`",
            dep.line,
            dep.name,
            dep.kind.section(),
            manifest.package,
            dep.ident,
            dep.ident,
            dep.ident,
            dep.name,
        ));
    }
    for (name, line) in &allows {
        let dep = manifest
            .deps
            .iter()
            .find(|d| d.name == *name || d.ident == *name);
        match dep {
            None => problems.push(format!(
                "{shown}:{line}: `{ALLOW} {name}`, but `{name}` is not a dependency here"
            )),
            Some(dep) if used.contains(&dep.ident) => problems.push(format!(
                "{shown}:{line}: `{ALLOW} {name}`, but `{}` is used; drop the comment",
                dep.ident
            )),
            Some(_) => {}
        }
    }
    problems
}

/// `(name, line)` of each `# tidy: allow-unused NAME (reason)` comment, and
/// a problem for each one without a reason.
fn allow_comments(shown: &str, manifest: &str) -> (Vec<(String, usize)>, Vec<String>) {
    let mut allows = Vec::new();
    let mut problems = Vec::new();
    for (index, line) in manifest.lines().enumerate() {
        let Some(at) = line.find(ALLOW) else {
            continue;
        };
        if !line[..at].contains('#') {
            continue;
        }
        let rest = line[at + ALLOW.len()..].trim();
        let (name, reason) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let reason = reason.trim();
        let has_reason = reason.starts_with('(') && reason.ends_with(')') && reason.len() > 2;
        if name.is_empty() || !has_reason {
            problems.push(format!(
                "{shown}:{}: write `# {ALLOW} NAME (why it is needed)`",
                index + 1
            ));
        } else {
            allows.push((name.to_owned(), index + 1));
        }
    }
    (allows, problems)
}

/// Every `.rs` file of the package in `dir`, leaving out the directories of
/// other packages nested inside it.
fn package_sources(dir: &Path, package_dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    collect_rust_files(dir, &mut files);
    files.retain(|file| {
        // The innermost package directory holding the file must be `dir`.
        package_dirs
            .iter()
            .filter(|d| file.starts_with(d))
            .max_by_key(|d| d.components().count())
            .is_some_and(|d| d == dir)
    });
    files.sort();
    files
}

/// Which of `manifest`'s dependency names `files` use.
fn used_idents(files: &[PathBuf], manifest: &Manifest) -> BTreeSet<String> {
    let wanted: BTreeSet<&str> = manifest.deps.iter().map(|d| d.ident.as_str()).collect();
    let mut used = BTreeSet::new();
    for file in files {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        for ident in &wanted {
            if !used.contains(*ident) && uses_crate(&text, ident) {
                used.insert((*ident).to_owned());
            }
        }
    }
    used
}

/// Whether Rust source `text` names crate `ident` as a path: `ident::`,
/// `use ident`, or `extern crate ident`, outside plain `//` comments.
pub(crate) fn uses_crate(text: &str, ident: &str) -> bool {
    text.lines().any(|line| {
        let trimmed = line.trim_start();
        let doc = trimmed.starts_with("///") || trimmed.starts_with("//!");
        if trimmed.starts_with("//") && !doc {
            return false;
        }
        let mut from = 0;
        while let Some(found) = line[from..].find(ident) {
            let start = from + found;
            let end = start + ident.len();
            from = end;
            let before = line[..start].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let after = &line[end..];
            if after
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
            {
                continue;
            }
            let prefix = line[..start].trim_end();
            if after.trim_start().starts_with("::")
                || prefix.ends_with("use")
                || prefix.ends_with("extern crate")
            {
                return true;
            }
        }
        false
    })
}

#[cfg(test)]
mod tests {
    use super::super::manifests::{Dep, DepKind};
    use super::*;

    #[test]
    fn path_uses_count_and_mentions_do_not() {
        assert!(uses_crate("use rustix::fd::AsFd;", "rustix"));
        assert!(uses_crate("    let x = libc::EAGAIN;", "libc"));
        assert!(uses_crate("use futures_lite;", "futures_lite"));
        assert!(uses_crate("extern crate proptest;", "proptest"));
        assert!(uses_crate("#[tokio::main]", "tokio"));
        assert!(uses_crate("    tracing::debug!(\"x\");", "tracing"));
        assert!(uses_crate("let e = ::libc::EINTR;", "libc"));
        assert!(uses_crate(
            "/// futures_lite::future::block_on(f);",
            "futures_lite"
        ));
        // Not paths, or in a plain comment, or a longer name.
        assert!(!uses_crate("// libc::kill would do", "libc"));
        assert!(!uses_crate("let libc = 1;", "libc"));
        assert!(!uses_crate("use rustix_extra::x;", "rustix"));
        assert!(!uses_crate("use my_rustix::x;", "rustix"));
        assert!(!uses_crate("the tracing crate", "tracing"));
    }

    fn manifest(text: &str, deps: &[(&str, DepKind)]) -> Manifest {
        Manifest {
            package: "p".to_owned(),
            path: PathBuf::from("p/Cargo.toml"),
            deps: deps
                .iter()
                .enumerate()
                .map(|(i, (name, kind))| Dep {
                    name: (*name).to_owned(),
                    ident: name.replace('-', "_"),
                    kind: *kind,
                    line: i + 5,
                })
                .collect(),
            text: text.to_owned(),
        }
    }

    fn used(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn reports_unused_dependencies_with_their_line() {
        let m = manifest(
            "",
            &[
                ("rustix", DepKind::Normal),
                ("futures-lite", DepKind::Dev),
                ("dns-lookup", DepKind::Normal),
            ],
        );
        let problems = problems_of("p/Cargo.toml", &m, &used(&["rustix", "futures_lite"]));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("p/Cargo.toml:7: `dns-lookup` in [dependencies] is never used"),
            "{problems:?}"
        );
    }

    #[test]
    fn allow_comments_need_a_reason_and_a_real_unused_dependency() {
        let text = "\
# tidy: allow-unused rustls-pki-types (turns on its `std` feature)
# tidy: allow-unused libc
# tidy: allow-unused rustix (stale)
# tidy: allow-unused nothing-here (typo)
";
        let m = manifest(
            text,
            &[
                ("rustls-pki-types", DepKind::Normal),
                ("libc", DepKind::Normal),
                ("rustix", DepKind::Normal),
            ],
        );
        let problems = problems_of("Cargo.toml", &m, &used(&["rustix"]));
        let lines: Vec<&str> = problems
            .iter()
            .map(|p| p.split(": ").next().unwrap_or(""))
            .collect();
        // libc: the allow has no reason, so it is also unused; rustix: a
        // stale allow; nothing-here: no such dependency.
        assert_eq!(
            lines,
            [
                "Cargo.toml:2",
                "Cargo.toml:6",
                "Cargo.toml:3",
                "Cargo.toml:4"
            ],
            "{problems:#?}"
        );
    }
}
