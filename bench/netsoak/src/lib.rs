//! `evloop-netsoak`: the tools behind `cargo xtask netem` and `cargo xtask
//! soak` (issue 11, "Reliability with figures").
//!
//! - [`link`]: a lossy IP link between two network namespaces, netem in
//!   userspace over two TUN devices (this machine's kernel has no
//!   `sch_netem`): per-packet delay and jitter, loss, duplication and
//!   reordering, from a seed.
//! - [`echo`]: the netem clients: a byte-exact TCP or TLS echo of N bytes,
//!   and a UDP echo that counts what came back.
//! - [`soak`]: the soak client: mixed load against `echo_server` (normal
//!   clients, slow readers, resets, half-closes, garbage on the TLS port,
//!   connect storms, UDP), every echoed byte checked.
//!
//! Every byte sent comes from a [`Pattern`] (a seeded pseudo-random stream),
//! so the receiver checks content, not just length.

pub mod echo;
pub mod link;
pub mod soak;

use std::time::Duration;

/// splitmix64: a small, fast, seedable generator (not for secrets).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// A number in `lo..=hi`, as `usize`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        let span = (hi.saturating_sub(lo) as u64).saturating_add(1);
        lo + usize::try_from(self.below(span)).unwrap_or(0)
    }

    /// A uniform number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let v = (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64;
        v
    }

    /// True with probability `p` (0 ≤ p ≤ 1).
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }
}

/// The byte stream of one connection: seeded, so the receiver regenerates
/// what the sender sent and checks each byte.
#[derive(Debug, Clone)]
pub struct Pattern {
    rng: Rng,
    word: [u8; 8],
    used: usize,
    offset: u64,
}

impl Pattern {
    /// The stream of `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Pattern {
        Pattern {
            rng: Rng::new(seed),
            word: [0; 8],
            used: 8,
            offset: 0,
        }
    }

    /// How many bytes this stream has produced so far.
    #[must_use]
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn next_byte(&mut self) -> u8 {
        if self.used == 8 {
            self.word = self.rng.next_u64().to_le_bytes();
            self.used = 0;
        }
        let b = self.word[self.used];
        self.used += 1;
        b
    }

    /// Fills `out` with the next bytes of the stream.
    pub fn fill(&mut self, out: &mut [u8]) {
        for b in out.iter_mut() {
            *b = self.next_byte();
        }
        self.offset += out.len() as u64;
    }

    /// Checks `got` against the next bytes of the stream.
    ///
    /// # Errors
    ///
    /// The stream offset of the first byte that differs.
    pub fn check(&mut self, got: &[u8]) -> Result<(), Mismatch> {
        for (i, &b) in got.iter().enumerate() {
            let want = self.next_byte();
            if b != want {
                return Err(Mismatch {
                    offset: self.offset + i as u64,
                    want,
                    got: b,
                });
            }
        }
        self.offset += got.len() as u64;
        Ok(())
    }
}

/// An echoed byte that differs from what was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch {
    /// Offset of the byte in the connection's stream.
    pub offset: u64,
    /// What was sent.
    pub want: u8,
    /// What came back.
    pub got: u8,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "echoed byte {} differs: sent {:#04x}, got {:#04x}",
            self.offset, self.want, self.got
        )
    }
}

/// Reads `--flag VALUE` pairs: the value of `flag` in `args`, parsed.
///
/// # Errors
///
/// A missing or unparsable value, as a message.
pub fn flag<T: std::str::FromStr>(args: &[String], flag: &str) -> Result<Option<T>, String> {
    let Some(at) = args.iter().position(|a| a == flag) else {
        return Ok(None);
    };
    let value = args
        .get(at + 1)
        .ok_or_else(|| format!("{flag} needs a value"))?;
    value
        .parse()
        .map(Some)
        .map_err(|_| format!("bad value {value:?} for {flag}"))
}

/// As [`flag`], but the flag must be there.
///
/// # Errors
///
/// A missing flag or value, or one that does not parse.
pub fn required<T: std::str::FromStr>(args: &[String], name: &str) -> Result<T, String> {
    flag(args, name)?.ok_or_else(|| format!("{name} is required"))
}

/// Seconds as a `Duration` (negative or non-finite: zero).
#[must_use]
pub fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

/// Raises the open-file soft limit to the hard limit (connect storms need
/// more than the usual 1,024).
pub fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_checks_its_own_bytes_and_finds_the_first_difference() {
        let mut tx = Pattern::new(7);
        let mut rx = Pattern::new(7);
        let mut buf = vec![0; 1000];
        tx.fill(&mut buf);
        rx.check(&buf[..400]).unwrap();
        rx.check(&buf[400..]).unwrap();
        assert_eq!(rx.offset(), 1000);
        tx.fill(&mut buf);
        buf[123] ^= 1;
        let e = rx.check(&buf).unwrap_err();
        assert_eq!(e.offset, 1123);
        assert_ne!(e.want, e.got);
        // Another seed is another stream.
        let mut other = Pattern::new(8);
        let mut a = vec![0; 64];
        Pattern::new(7).fill(&mut a);
        assert!(other.check(&a).is_err());
    }

    #[test]
    fn rng_ranges_stay_in_bounds() {
        let mut rng = Rng::new(1);
        for _ in 0..10_000 {
            let v = rng.range(3, 9);
            assert!((3..=9).contains(&v));
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert_eq!(rng.below(0), 0);
        assert!(!rng.chance(0.0));
        assert!(rng.chance(1.0));
    }

    #[test]
    fn flags_parse_or_say_why_not() {
        let args: Vec<String> = ["--n", "5", "--x"].iter().map(|s| (*s).into()).collect();
        assert_eq!(flag::<u32>(&args, "--n"), Ok(Some(5)));
        assert_eq!(flag::<u32>(&args, "--m"), Ok(None));
        assert!(flag::<u32>(&args, "--x").is_err());
        assert!(required::<u32>(&args, "--m").is_err());
    }
}
