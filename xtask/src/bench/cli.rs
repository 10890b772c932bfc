//! The command lines of `cargo xtask bench` and its subcommands (and of
//! `soak` and `netem`): [`Cli`] reads them with `lexopt` and words every
//! error the same way, so that each command keeps only its own flags.

/// `line` split at whitespace: a command line for the option parsers'
/// tests.
#[cfg(test)]
pub(crate) fn args(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

/// The command line of a bench subcommand, read with `lexopt`: errors come
/// back as `xtask <name>: <what>` followed by the usage text.
pub(crate) struct Cli {
    parser: lexopt::Parser,
    name: &'static str,
    usage: &'static str,
}

impl Cli {
    /// The command line `args` of subcommand `name` (`bench tls`), whose
    /// errors end with `usage`.
    pub(crate) fn new(name: &'static str, usage: &'static str, args: &[String]) -> Cli {
        Cli {
            parser: lexopt::Parser::from_args(args),
            name,
            usage,
        }
    }

    /// The next option as written (`--rounds`), or `None` at the end. `-h`
    /// is the one short option passed on (`bench sendfile` takes it); any
    /// other, or a bare value, is an error here, worded as lexopt words it.
    pub(crate) fn next(&mut self) -> Result<Option<String>, String> {
        let arg = match self.parser.next() {
            Ok(Some(arg)) => arg,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.error(&e)),
        };
        match arg {
            lexopt::Arg::Long(name) => Ok(Some(format!("--{name}"))),
            lexopt::Arg::Short('h') => Ok(Some("-h".to_owned())),
            other => {
                let e = other.unexpected();
                Err(self.error(&e))
            }
        }
    }

    /// The error for `flag`, from [`Cli::next`], that this command does not
    /// take: each parser's last match arm.
    pub(crate) fn unknown(&self, flag: &str) -> String {
        let arg = match flag.strip_prefix("--") {
            Some(name) => lexopt::Arg::Long(name),
            None => lexopt::Arg::Short('h'),
        };
        self.error(&arg.unexpected())
    }

    fn error(&self, e: &dyn std::fmt::Display) -> String {
        format!("xtask {}: {e}\n\n{}", self.name, self.usage)
    }

    /// The value of option `flag` (just read), as text.
    pub(crate) fn value(&mut self, flag: &str) -> Result<String, String> {
        match self.parser.value().map(lexopt::ValueExt::string) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) | Err(e) => Err(self.error(&format_args!("{flag}: {e}"))),
        }
    }

    /// The value of `flag` parsed by `parse`, which returns `None` for a
    /// value out of range.
    pub(crate) fn parsed<T>(
        &mut self,
        flag: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, String> {
        let v = self.value(flag)?;
        parse(&v).ok_or_else(|| self.error(&format_args!("bad value `{v}` for {flag}")))
    }

    /// The value of `flag` as a positive whole number.
    pub(crate) fn positive(&mut self, flag: &str) -> Result<usize, String> {
        self.parsed(flag, positive)
    }

    /// The value of `flag` as a comma-separated list of positive whole
    /// numbers (`--sizes`: message sizes in bytes).
    pub(crate) fn sizes(&mut self, flag: &str) -> Result<Vec<usize>, String> {
        self.parsed(flag, |v| v.split(',').map(|s| positive(s.trim())).collect())
    }

    /// The value of `flag` as a finite, non-negative number of seconds.
    pub(crate) fn seconds(&mut self, flag: &str) -> Result<f64, String> {
        self.parsed(flag, |v| {
            v.parse().ok().filter(|s: &f64| s.is_finite() && *s >= 0.0)
        })
    }

    /// The value of `flag` as a comma-separated list of `known` names.
    pub(crate) fn names(
        &mut self,
        flag: &str,
        known: &[&'static str],
    ) -> Result<Vec<&'static str>, String> {
        self.parsed(flag, |v| {
            v.split(',')
                .map(|s| known.iter().copied().find(|k| *k == s.trim()))
                .collect()
        })
    }
}

/// `text` as a whole number above zero (counts and sizes on the command
/// lines).
fn positive(text: &str) -> Option<usize> {
    text.parse().ok().filter(|&n| n > 0)
}

/// The command line of this run as the reports quote it: `cargo xtask
/// NAME ARGS`.
pub(crate) fn command_line(name: &str, args: &[String]) -> String {
    format!("cargo xtask {name} {}", args.join(" "))
        .trim_end()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_come_as_written_and_the_rest_is_refused() {
        let line = args("--quick -h --bogus -x");
        let mut cli = Cli::new("t", "usage", &line);
        assert_eq!(cli.next(), Ok(Some("--quick".to_owned())));
        assert_eq!(cli.next(), Ok(Some("-h".to_owned())));
        assert_eq!(cli.unknown("-h"), "xtask t: invalid option '-h'\n\nusage");
        let bogus = cli.next().unwrap().unwrap();
        let refused = "xtask t: invalid option '--bogus'\n\nusage";
        assert_eq!(cli.unknown(&bogus), refused);
        let short = "xtask t: invalid option '-x'\n\nusage";
        assert_eq!(cli.next(), Err(short.to_owned()));
        let mut cli = Cli::new("t", "usage", &line[..0]);
        assert_eq!(cli.next(), Ok(None));
        let mut cli = Cli::new("t", "usage", &args("foo"));
        let value = "xtask t: unexpected argument \"foo\"\n\nusage";
        assert_eq!(cli.next(), Err(value.to_owned()));
    }

    #[test]
    fn sizes_and_bad_values() {
        let line = args("--sizes 1024,64 --sizes 1,0");
        let mut cli = Cli::new("bench t", "usage", &line);
        assert!(cli.next().unwrap().is_some());
        assert_eq!(cli.sizes("--sizes"), Ok(vec![1024, 64]));
        assert!(cli.next().unwrap().is_some());
        let bad = "xtask bench t: bad value `1,0` for --sizes\n\nusage";
        assert_eq!(cli.sizes("--sizes"), Err(bad.to_owned()));
        assert_eq!(cli.next(), Ok(None));
    }

    #[test]
    fn command_lines_are_quoted_without_a_trailing_space() {
        let line = command_line("bench tls", &args("--quick --rounds 2"));
        assert_eq!(line, "cargo xtask bench tls --quick --rounds 2");
        assert_eq!(command_line("bench", &[]), "cargo xtask bench");
    }
}
