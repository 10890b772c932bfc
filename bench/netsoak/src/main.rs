//! `evloop-netsoak`: the command line of the netem and soak tools (see the
//! library docs): `link` (the lossy link), `tcp`, `tls`, `udp` (the netem
//! clients), `soak` (the soak client), `gen-cert DIR` (the run's CA and
//! server certificate).

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;

use evloop_netsoak::{echo, link, soak};

fn usage() -> String {
    format!(
        "usage:\n  {}\n  {}\n  {}\n  evloop-netsoak gen-cert DIR",
        link::USAGE,
        echo::USAGE.replace('\n', "\n  "),
        soak::USAGE
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{}", usage());
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "link" => link::Config::parse(rest).and_then(|config| {
            let [to_client, to_server] = link::run(&config)?;
            // The parent may be gone (that is how a Ctrl-C ends the link):
            // a closed stdout is not an error here.
            let mut out = std::io::stdout();
            let _ = writeln!(out, "{}", link::report("client-to-server", &to_server));
            let _ = writeln!(out, "{}", link::report("server-to-client", &to_client));
            Ok(())
        }),
        "tcp" => echo::tcp(rest).map(|e| println!("{e}")),
        "tls" => echo::tls(rest).map(|e| println!("{e}")),
        "udp" => echo::udp(rest).and_then(|c| {
            println!("{c}");
            if c.corrupt == 0 {
                Ok(())
            } else {
                Err(format!("{} datagrams came back corrupted", c.corrupt))
            }
        }),
        "soak" => soak::Config::parse(rest).and_then(|config| {
            let tally = soak::run(&config)?;
            print!("{}", soak::report(&tally));
            if tally.mismatches.load(Relaxed) > 0 {
                Err("echoed bytes differed (see above)".to_owned())
            } else {
                Ok(())
            }
        }),
        "gen-cert" => match rest {
            [dir] => evloop_loadgen::tls::generate_cert(std::path::Path::new(dir)),
            _ => Err("gen-cert DIR".to_owned()),
        },
        "-h" | "--help" => {
            println!("{}", usage());
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{}", usage());
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("evloop-netsoak {command}: {e}");
            ExitCode::FAILURE
        }
    }
}
