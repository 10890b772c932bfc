//! `evloop-loadgen`: the command line of the echo load generator (see the
//! library docs for what it measures and how).
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

use evloop_loadgen::{Config, USAGE, WARMUP_DONE};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `-h`/`--help` anywhere wins, as before lexopt read the options.
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if args.first().map(String::as_str) == Some("gen-cert") {
        let [_, dir] = args.as_slice() else {
            eprintln!("evloop-loadgen: gen-cert DIR\n{USAGE}");
            return ExitCode::from(2);
        };
        return match evloop_loadgen::tls::generate_cert(std::path::Path::new(dir)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("evloop-loadgen: error: {message}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match Config::parse(&args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("evloop-loadgen: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mark = config.mark;
    let on_counting = || {
        if mark {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{WARMUP_DONE}");
            let _ = out.flush();
        }
    };
    let result = match &config.tls {
        None => evloop_loadgen::run(&config, on_counting).map(|r| r.to_string()),
        Some(tls) => {
            evloop_loadgen::tls::run(&config, tls, config.mode, on_counting).map(|r| r.to_string())
        }
    };
    match result {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("evloop-loadgen: error: {message}");
            ExitCode::FAILURE
        }
    }
}
