//! The repository documents itself: no comment, doc, test or manifest may
//! point to a file outside it. A reader with a clone must be able to follow
//! every reference.
//!
//! Checked in every file git tracks or would track (`git ls-files --cached
//! --others --exclude-standard`) whose name ends in `.rs`, `.md`, `.toml`,
//! `.py`, `.sh`, `.yml` or `.yaml`, and every file under `.ci/`. A line is
//! reported when it has
//!
//! 1. an absolute path into the machine's work area ([`WORK_AREA`]), or a
//!    relative path that climbs above the repository root (too many `..`
//!    from the file's directory);
//! 2. a path into the planning folder that lives beside the repository
//!    ([`PLANNING`]);
//! 3. a Markdown file name that exists neither at that path from the root
//!    nor from the file's directory or any directory between it and the
//!    root (`docs/architecture.md` is fine; a bare name of a document kept
//!    elsewhere is not);
//! 4. a citation of the documents kept outside: the upper-case names of the
//!    specification and the design notes, and the numbered lines (`R-` and
//!    a number) of the asyncio reference notes. What evloop promises is
//!    `docs/behaviour.md`, cited as `docs/behaviour.md 3.5`; how it is built
//!    is `docs/architecture.md`; asyncio's behaviour is described in the
//!    project's own words.
//!
//! The needles are built with `concat!` so that this file passes itself.

use std::path::{Component, Path, PathBuf};
use std::process::Command;

use super::rel;

/// The file name endings that are checked (and everything under `.ci/`).
const CHECKED: &[&str] = &[".rs", ".md", ".toml", ".py", ".sh", ".yml", ".yaml"];

/// Upper-case names of outside documents, as whole words.
const OUTSIDE_DOC_WORDS: &[&str] = &[concat!("SP", "EC"), concat!("DES", "IGN")];
/// The style notes, cited as `<word> 3.15` or `<word> §4`.
const STYLE_WORD: &str = concat!("STY", "LE");
/// The work area's absolute path.
const WORK_AREA: &str = concat!("/wo", "rk/");
/// The planning folder beside the repository.
const PLANNING: &str = concat!("sha", "red/");

/// Every reference to a file outside the repository at `root`, as
/// `file:line: ...` problems.
pub(crate) fn check(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for file in checked_files(root) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue; // binary or unreadable: not a document
        };
        let shown = rel(root, &file);
        for (line, what) in outside_refs(root, &file, &text) {
            problems.push(format!(
                "{shown}:{line}: {what} (the repository documents itself: cite a file under \
                 docs/, or say it in the project's own words)"
            ));
        }
    }
    problems
}

/// The files to check: tracked or untracked-but-not-ignored, by name.
fn checked_files(root: &Path) -> Vec<PathBuf> {
    let output = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root)
        .output();
    let Some(output) = output.ok().filter(|o| o.status.success()) else {
        // Not a git checkout: the Rust and Markdown files of the usual trees.
        let mut files = Vec::new();
        for tree in ["crates", "tests", "xtask", "bench", "docs", ".ci"] {
            super::collect_files(&root.join(tree), &mut files);
        }
        files.extend(["README.md", "Cargo.toml"].map(|f| root.join(f)));
        files.retain(|f| f.is_file() && is_checked(&rel(root, f)));
        files.sort();
        return files;
    };
    let mut files: Vec<PathBuf> = output
        .stdout
        .split(|&b| b == 0)
        .filter_map(|name| std::str::from_utf8(name).ok())
        .filter(|name| !name.is_empty() && is_checked(name))
        .map(|name| root.join(name))
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files.dedup();
    files
}

fn is_checked(name: &str) -> bool {
    name.starts_with(".ci/") || CHECKED.iter().any(|ext| name.ends_with(ext))
}

/// `(line number, what)` for each outside reference in `text`, the content
/// of `file` in the repository at `root`.
pub(crate) fn outside_refs(root: &Path, file: &Path, text: &str) -> Vec<(usize, String)> {
    let dir = file.parent().unwrap_or(root);
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if let Some(what) = line_problem(root, dir, line) {
            found.push((index + 1, what));
        }
    }
    found
}

fn line_problem(root: &Path, dir: &Path, line: &str) -> Option<String> {
    if line.contains(WORK_AREA) {
        return Some(format!("`{WORK_AREA}..` is a path on one machine"));
    }
    for (start, token) in path_tokens(line) {
        let after_word_char = line[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        if token.contains("://") || after_word_char {
            continue;
        }
        let bare = token.trim_start_matches("./");
        let plain = bare.trim_start_matches("../");
        if plain.starts_with(PLANNING) || token.contains(&format!("/{PLANNING}")) {
            return Some(format!("`{token}` points into the planning folder outside"));
        }
        if token.starts_with("../") && escapes(root, dir, token) {
            return Some(format!("`{token}` climbs out of the repository"));
        }
        let is_md = token.ends_with(".md") && !bare.starts_with('.');
        if is_md && !md_exists(root, dir, bare) {
            return Some(format!("`{token}` is not a file of the repository"));
        }
    }
    for word in OUTSIDE_DOC_WORDS {
        if has_word(line, word) {
            return Some(format!("`{word}` cites a document kept outside"));
        }
    }
    if let Some(at) = find_word(line, STYLE_WORD) {
        let next = line[at + STYLE_WORD.len()..].trim_start().chars().next();
        if next.is_some_and(|c| c.is_ascii_digit() || c == '§') {
            return Some(format!(
                "`{STYLE_WORD} ..` cites the style notes kept outside"
            ));
        }
    }
    if let Some(r) = reference_line(line) {
        return Some(format!(
            "`{r}` cites the asyncio reference notes kept outside (describe the behaviour instead)"
        ));
    }
    None
}

/// Path-like tokens (runs of letters, digits and `_-./~`) that contain a
/// `/` or end in `.md`, with their byte offsets.
fn path_tokens(line: &str) -> Vec<(usize, &str)> {
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || "_-./~:<>*".contains(c);
    let mut tokens = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices().chain([(line.len(), ' ')]) {
        match (start, is_path_char(c)) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                let token = line[s..i].trim_end_matches(['.', ':']);
                let token = token.trim_start_matches(':');
                let offset = s + (line[s..i].len() - line[s..i].trim_start_matches(':').len());
                if token.contains('/') || token.ends_with(".md") {
                    tokens.push((offset, token));
                }
                start = None;
            }
            _ => {}
        }
    }
    tokens
}

/// Whether relative path `token` from `dir` goes above `root`.
fn escapes(root: &Path, dir: &Path, token: &str) -> bool {
    let Ok(inside) = dir.strip_prefix(root) else {
        return false;
    };
    let mut depth: i64 = i64::try_from(inside.components().count()).unwrap_or(i64::MAX);
    for part in Path::new(token).components() {
        match part {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

/// Whether Markdown path `name` exists from the root, or from `dir` or any
/// directory between it and the root.
fn md_exists(root: &Path, dir: &Path, name: &str) -> bool {
    if name.contains('<') || name.contains('*') || name.starts_with('~') {
        return true; // a pattern, not a path
    }
    if root.join(name).is_file() {
        return true;
    }
    let mut at = Some(dir);
    while let Some(d) = at {
        if d.join(name).is_file() {
            return true;
        }
        if d == root || !d.starts_with(root) {
            break;
        }
        at = d.parent();
    }
    false
}

/// The byte offset of `word` in `line` as a whole word (no letter, digit or
/// `_` either side).
fn find_word(line: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = line[from..].find(word) {
        let start = from + found;
        let end = start + word.len();
        let before = line[..start].chars().next_back();
        let after = line[end..].chars().next();
        let word_char = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        if !word_char(before) && !word_char(after) {
            return Some(start);
        }
        from = end;
    }
    None
}

fn has_word(line: &str, word: &str) -> bool {
    find_word(line, word).is_some()
}

/// The first `R-<digits>` citation in `line` (`R` not part of a longer word).
fn reference_line(line: &str) -> Option<&str> {
    let bytes = line.as_bytes();
    let mut from = 0;
    while let Some(found) = line[from..].find("R-") {
        let start = from + found;
        from = start + 2;
        let before = line[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-') {
            continue;
        }
        let digits = bytes[start + 2..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits > 0 {
            return Some(&line[start..start + 2 + digits]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needles are assembled at run time so that this file passes itself.
    const SPEC_WORD: &str = concat!("SP", "EC");
    const DESIGN_WORD: &str = concat!("DES", "IGN");
    const MD: &str = concat!(".m", "d");
    const UP_SHARED: &str = concat!("../sha", "red/");

    fn problems(file: &str, text: &str) -> Vec<(usize, String)> {
        let root = crate::workspace_root();
        outside_refs(&root, &root.join(file), text)
    }

    fn flags(file: &str, line: &str) {
        assert_eq!(
            problems(file, line).len(),
            1,
            "{line:?} in {file} is not flagged"
        );
    }

    fn accepts(file: &str, line: &str) {
        assert_eq!(problems(file, line), [], "{line:?} in {file} is flagged");
    }

    #[test]
    fn flags_paths_and_citations_outside_the_repository() {
        flags(
            "docs/architecture.md",
            &format!("see `{UP_SHARED}{SPEC_WORD}{MD}`"),
        );
        flags(
            "crates/evloop/src/lib.rs",
            &format!("//! see {}x", "../".repeat(4)),
        );
        flags(
            "README.md",
            &format!("in {WORK_AREA}{PLANNING}{DESIGN_WORD}{MD}"),
        );
        flags(
            "docs/testing.md",
            &format!("the notes in {PLANNING}notes{MD}"),
        );
        flags("docs/testing.md", &format!("every line of {SPEC_WORD}{MD}"));
        flags(
            "xtask/src/main.rs",
            &format!("//! ({DESIGN_WORD}{MD} \"Examples\")"),
        );
        flags(
            "docs/testing.md",
            &format!("see reference/asyncio-behaviour{MD}"),
        );
        flags(
            "crates/x/src/a.rs",
            &format!("//! timers ({SPEC_WORD} 3.5)"),
        );
        flags(
            "crates/x/src/a.rs",
            &format!("//! as asyncio does ({}-63)", 'R'),
        );
        flags("crates/x/src/a.rs", &format!("//! ({}-108..)", 'R'));
        flags("crates/x/src/a.rs", &format!("//! ({STYLE_WORD} 3.15)"));
        // The problem names the line.
        let found = problems("docs/testing.md", "one\ntwo ../../x\n");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, 2);
    }

    #[test]
    fn accepts_the_repository_own_files() {
        accepts("crates/evloop/src/lib.rs", "//! See docs/architecture.md.");
        accepts("docs/testing.md", &format!("see [it](architecture{MD})"));
        accepts("docs/testing.md", "in `docs/architecture.md` and README.md");
        accepts(
            "bench/loadgen/Cargo.toml",
            r#"x = { path = "../servers/raw-epoll-echo" }"#,
        );
        accepts(
            "crates/x/src/a.rs",
            "//! tests are named spec_3_5_what, after the specification",
        );
        accepts(
            "crates/x/src/a.rs",
            "let e = ERR-1; // an XR-7 model; R-type",
        );
        accepts(
            "crates/x/src/a.rs",
            &format!("//! a {STYLE_WORD} guide; tests/<area>_<topic>{MD}"),
        );
        accepts("crates/x/src/a.rs", "use std::sync::Arc; // shared state");
        accepts("crates/x/src/a.rs", "let half = total/2; // a/b");
    }

    #[test]
    fn the_repository_points_nowhere_outside() {
        let root = crate::workspace_root();
        let problems = check(&root);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
