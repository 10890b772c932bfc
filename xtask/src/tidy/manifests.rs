//! The workspace's manifests as tidy sees them: cargo's own reading of every
//! member's Cargo.toml (`cargo metadata --no-deps`, through `cargo_metadata`),
//! plus the raw text, which tidy needs for two things cargo does not report:
//! the line a dependency is declared on (for `file:line` messages) and the
//! `# tidy: allow-unused NAME (reason)` comments.

use std::fs;
use std::path::{Path, PathBuf};

use cargo_metadata::{DependencyKind, MetadataCommand};

/// The kind of a dependency section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum DepKind {
    Normal,
    Dev,
    Build,
}

impl DepKind {
    /// The section's heading in a Cargo.toml, as tidy's messages quote it.
    pub(crate) fn section(self) -> &'static str {
        match self {
            DepKind::Normal => "[dependencies]",
            DepKind::Dev => "[dev-dependencies]",
            DepKind::Build => "[build-dependencies]",
        }
    }
}

/// One dependency of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dep {
    /// The real package name (after a `package = ".."` rename).
    pub(crate) name: String,
    /// The name the code uses: the key it is declared under (a rename, or
    /// the package name), with `-` turned into `_`.
    pub(crate) ident: String,
    pub(crate) kind: DepKind,
    /// 1-based line of its declaration in the manifest (1 when not found).
    pub(crate) line: usize,
}

/// What tidy needs from one member's Cargo.toml.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// `[package] name`.
    pub(crate) package: String,
    /// The Cargo.toml's path.
    pub(crate) path: PathBuf,
    /// Every dependency in every dependency section (target-specific ones
    /// included).
    pub(crate) deps: Vec<Dep>,
    /// The manifest's text.
    pub(crate) text: String,
}

impl Manifest {
    /// The package's directory.
    pub(crate) fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

/// Every workspace member's manifest, sorted by path.
///
/// # Errors
///
/// `cargo metadata` failing (a broken Cargo.toml), or an unreadable manifest.
pub(crate) fn load(root: &Path) -> Result<Vec<Manifest>, String> {
    let metadata = MetadataCommand::new()
        .cargo_path(crate::cargo())
        .manifest_path(root.join("Cargo.toml"))
        .no_deps()
        .exec()
        .map_err(|e| format!("Cargo.toml: `cargo metadata` failed: {e}"))?;
    let mut manifests = Vec::new();
    for package in metadata.workspace_packages() {
        let path = package.manifest_path.clone().into_std_path_buf();
        let text = fs::read_to_string(&path)
            .map_err(|e| format!("{}: unreadable: {e}", path.display()))?;
        let deps = package
            .dependencies
            .iter()
            .map(|dep| {
                let kind = match dep.kind {
                    DependencyKind::Development => DepKind::Dev,
                    DependencyKind::Build => DepKind::Build,
                    _ => DepKind::Normal,
                };
                let key = dep.rename.as_deref().unwrap_or(&dep.name);
                Dep {
                    name: dep.name.clone(),
                    ident: key.replace('-', "_"),
                    kind,
                    line: declaration_line(&text, key, kind).unwrap_or(1),
                }
            })
            .collect();
        manifests.push(Manifest {
            package: package.name.to_string(),
            path,
            deps,
            text,
        });
    }
    manifests.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(manifests)
}

/// The 1-based line where `key` is declared in a `kind` section of
/// `manifest`: `key = ..`, `key.workspace = ..`, `"key" = ..` or a
/// `[..dependencies.key]` header. Only for messages; cargo did the parsing.
pub(crate) fn declaration_line(manifest: &str, key: &str, kind: DepKind) -> Option<usize> {
    let mut section: Option<DepKind> = None;
    for (index, line) in manifest.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[') {
            let header = header.trim_end_matches(']').trim();
            let (table, name) = match header.rsplit_once("dependencies.") {
                Some((before, name)) => (format!("{before}dependencies"), Some(name)),
                None => (header.to_owned(), None),
            };
            section = section_kind(&table);
            if section == Some(kind) && name.map(|n| n.trim_matches(['"', '\''])) == Some(key) {
                return Some(index + 1);
            }
            if name.is_some() {
                section = None;
            }
            continue;
        }
        if section != Some(kind) {
            continue;
        }
        let unquoted = line.trim_start_matches(['"', '\'']);
        if let Some(rest) = unquoted.strip_prefix(key) {
            let rest = rest.trim_start_matches(['"', '\'']).trim_start();
            if rest.starts_with('=') || rest.starts_with('.') {
                return Some(index + 1);
            }
        }
    }
    None
}

/// The kind of a `[dependencies]`-like table header (target tables too).
fn section_kind(table: &str) -> Option<DepKind> {
    let last = table.rsplit('.').next().unwrap_or(table);
    match last {
        "dependencies" => Some(DepKind::Normal),
        "dev-dependencies" | "dev_dependencies" => Some(DepKind::Dev),
        "build-dependencies" | "build_dependencies" => Some(DepKind::Build),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
[package]
name = "x"

[dependencies]
libc = "0.2"
"futures-lite".workspace = true
rustix = { workspace = true }

[dev-dependencies]
rustix = { workspace = true, features = ["fs"] }

[target.'cfg(unix)'.build-dependencies]
cc = "1"

[dependencies.renamed]
package = "evloop-core"
"#;

    #[test]
    fn finds_declaration_lines_per_section() {
        assert_eq!(declaration_line(MANIFEST, "libc", DepKind::Normal), Some(6));
        assert_eq!(
            declaration_line(MANIFEST, "futures-lite", DepKind::Normal),
            Some(7)
        );
        assert_eq!(
            declaration_line(MANIFEST, "rustix", DepKind::Normal),
            Some(8)
        );
        assert_eq!(declaration_line(MANIFEST, "rustix", DepKind::Dev), Some(11));
        assert_eq!(declaration_line(MANIFEST, "cc", DepKind::Build), Some(14));
        assert_eq!(
            declaration_line(MANIFEST, "renamed", DepKind::Normal),
            Some(16)
        );
        assert_eq!(declaration_line(MANIFEST, "libc", DepKind::Dev), None);
        assert_eq!(declaration_line(MANIFEST, "lib", DepKind::Normal), None);
    }

    #[test]
    fn loads_the_real_workspace() {
        let manifests = load(&crate::workspace_root()).expect("cargo metadata");
        let xtask = manifests
            .iter()
            .find(|m| m.package == "xtask")
            .expect("xtask is a member");
        assert!(xtask.deps.iter().any(|d| d.ident == "cargo_metadata"));
        assert!(xtask.dir().join("src/main.rs").is_file());
    }
}
