//! The sessions' seeded PRNG (splitmix64) and the derivation of session
//! seeds from a run's seed.

/// Session `index`'s seed in the run seeded `run_seed`.
pub fn session_seed(run_seed: u64, index: u64) -> u64 {
    let mut rng = Rng(run_seed ^ index.wrapping_mul(0xa076_1d64_78bd_642f));
    rng.next()
}

/// splitmix64 (Steele, Lea, Flood 2014).
#[derive(Clone, Debug)]
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below((hi - lo) as u64 + 1) as usize
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `len` bytes.
    pub(crate) fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// `total` cut into random chunks (each at least 1 byte).
    pub(crate) fn chunks(&mut self, total: usize) -> Vec<usize> {
        let max = match self.below(3) {
            0 => 64,
            1 => 4096,
            _ => 65536,
        };
        let mut out = Vec::new();
        let mut left = total;
        while left > 0 {
            let n = self.range(1, max.min(left));
            out.push(n);
            left -= n;
        }
        out
    }
}
