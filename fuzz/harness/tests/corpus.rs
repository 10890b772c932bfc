//! Replays every committed fuzz input through its target on stable: the
//! minimized corpus in `fuzz/corpus/<target>/` and the inputs of past
//! findings in `fuzz/regressions/<target>/`. A target whose corpus is
//! missing or empty fails (the corpus is what makes this test meaningful).

use std::fs;
use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fuzz/")
        .to_path_buf()
}

fn replay(target: &str, run: fn(&[u8])) -> (usize, usize) {
    let corpus = inputs(&fuzz_dir().join("corpus").join(target));
    let regressions = inputs(&fuzz_dir().join("regressions").join(target));
    for path in corpus.iter().chain(&regressions) {
        let data = fs::read(path).expect("read input");
        eprintln!("{target}: {}", path.display());
        run(&data);
    }
    (corpus.len(), regressions.len())
}

macro_rules! corpus_test {
    ($name:ident) => {
        #[test]
        fn $name() {
            let (corpus, regressions) = replay(stringify!($name), evloop_fuzz::$name);
            println!(
                "{}: {corpus} corpus and {regressions} regression inputs replayed",
                stringify!($name)
            );
            assert!(
                corpus > 0,
                "fuzz/corpus/{} is missing or empty",
                stringify!($name)
            );
        }
    };
}

corpus_test!(streams_reader);
corpus_test!(transport_read);
corpus_test!(timer_queue);
corpus_test!(tls_server);
corpus_test!(happy_eyeballs);
corpus_test!(parsers);

/// Every target in `evloop_fuzz::TARGETS` has a fuzz target file and a
/// test above (the list is the one `cargo xtask fuzz` runs).
#[test]
fn every_target_has_a_fuzz_target_file() {
    let tested = [
        "streams_reader",
        "transport_read",
        "timer_queue",
        "tls_server",
        "happy_eyeballs",
        "parsers",
    ];
    let names: Vec<&str> = evloop_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, tested);
    for name in names {
        let file = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        assert!(file.is_file(), "{} is missing", file.display());
    }
}
