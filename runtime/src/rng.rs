//! The project's one random generator: action sampling in the engine, the
//! trainer's environments, initialisation and shuffling, and the synthetic
//! market of `nq-data synth`. Written out here rather than taken from a crate
//! so that a seed means the same stream on every platform and in every
//! release (no crate upgrade can change it), and `no_std`.
//!
//! xoshiro256** 1.0 (Blackman and Vigna,
//! <https://prng.di.unimi.it/xoshiro256starstar.c>), seeded through SplitMix64
//! as its authors recommend, so that nearby seeds (1, 2, 3, ...) give
//! unrelated streams. Continuous draws use only IEEE arithmetic and the
//! pure-Rust `libm`, never the platform's maths library, whose `ln`/`cos` may
//! differ in the last bit between systems.

/// xoshiro256**: 256 bits of state, period 2^256 - 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// Expands `seed` with SplitMix64; the state is never all zero.
    pub const fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut s = [0u64; 4];
        let mut i = 0;
        while i < 4 {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            s[i] = z ^ (z >> 31);
            i += 1;
        }
        Rng { s }
    }

    /// Stream `stream` of `seed`: distinct streams give independent
    /// sequences (one per environment, one for shuffling, ...).
    pub const fn stream(seed: u64, stream: u64) -> Rng {
        Rng::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    /// The whole state, to save and resume a stream exactly.
    pub const fn state(&self) -> [u64; 4] {
        self.s
    }

    /// A generator continuing from `state`; the all-zero state (which would
    /// only ever give zeros) is replaced by seed 0's.
    pub const fn from_state(state: [u64; 4]) -> Rng {
        if state[0] | state[1] | state[2] | state[3] == 0 {
            Rng::new(0)
        } else {
            Rng { s: state }
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[0, 1)` with 24 bits, so every value is exact in `f32`.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform in `(0, 1]`: safe to take the logarithm of.
    pub fn uniform_open0(&mut self) -> f64 {
        1.0 - self.uniform()
    }

    /// Uniform integer in `[0, n)` (multiply-shift on 32 random bits); 0 for
    /// `n == 0`.
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    /// Exponential with mean 1.
    pub fn exponential(&mut self) -> f64 {
        -libm::log(self.uniform_open0())
    }

    /// Standard normal by Box-Muller. The partner draw is thrown away: keeping
    /// it would make the stream depend on how many normals came before.
    pub fn normal(&mut self) -> f64 {
        let radius = libm::sqrt(-2.0 * libm::log(self.uniform_open0()));
        radius * libm::cos(core::f64::consts::TAU * self.uniform())
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Fisher-Yates shuffle, in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_implementation() {
        // State 1, 2, 3, 4 fed to the reference C code gives these first outputs.
        let mut rng = Rng { s: [1, 2, 3, 4] };
        let first = [
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64(),
        ];
        assert_eq!(
            first,
            [11520, 0, 1509978240, 1215971899390074240],
            "xoshiro256** diverged from the reference sequence"
        );
    }

    #[test]
    fn splitmix_seeding_matches_the_reference() {
        // SplitMix64 from seed 0 starts with 0xe220a8397b1dcdaf (Vigna's splitmix64.c).
        assert_eq!(Rng::new(0).s[0], 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn streams_differ_and_a_saved_state_replays() {
        let mut a = Rng::stream(1, 0);
        let mut b = Rng::stream(1, 1);
        assert_ne!(a.next_u64(), b.next_u64());
        let saved = a.state();
        let x = [a.next_u64(), a.next_u64(), a.next_u64()];
        let mut c = Rng::from_state(saved);
        assert_eq!(x, [c.next_u64(), c.next_u64(), c.next_u64()]);
        assert_eq!(Rng::from_state([0; 4]), Rng::new(0));
    }

    #[test]
    fn draws_stay_in_range_and_have_the_right_moments() {
        let mut rng = Rng::new(42);
        let n = 200_000;
        let (mut sum_u, mut sum_e, mut sum_z, mut sum_z2) = (0.0, 0.0, 0.0, 0.0);
        let mut seen = [0usize; 7];
        for _ in 0..n {
            let u = rng.uniform();
            assert!((0.0..1.0).contains(&u));
            assert!((0.0..1.0).contains(&rng.next_f32()));
            sum_u += u;
            sum_e += rng.exponential();
            let z = rng.normal();
            sum_z += z;
            sum_z2 += z * z;
            seen[rng.below(7)] += 1;
        }
        let n = n as f64;
        assert!((sum_u / n - 0.5).abs() < 0.005);
        assert!((sum_e / n - 1.0).abs() < 0.01);
        assert!((sum_z / n).abs() < 0.01);
        assert!((sum_z2 / n - 1.0).abs() < 0.01);
        assert!(seen.iter().all(|&c| c > 27_000), "{seen:?}");
    }
}
