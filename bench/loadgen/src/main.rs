//! `evloop-loadgen`: the command line of the echo load generator (see the
//! library docs for what it measures and how).
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

use evloop_loadgen::{Config, USAGE, WARMUP_DONE};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let config = match Config::parse(&args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("evloop-loadgen: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mark = config.mark;
    let result = evloop_loadgen::run(&config, || {
        if mark {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{WARMUP_DONE}");
            let _ = out.flush();
        }
    });
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
