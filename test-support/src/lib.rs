//! What the workspace's tests share: where the repository and the real data
//! are, and the Python the interop tests run.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (this crate sits one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support lives in the workspace")
        .to_path_buf()
}

/// `../shared/data/real/<rel>`: the real market data beside the repository
/// (read-only; CI has it there too).
pub fn real_data(rel: &str) -> PathBuf {
    workspace_root().join("../shared/data/real").join(rel)
}

/// The Python of the tests' own virtual environment, `.venv-test`, made by
/// `scripts/setup-tests.sh` from nothing with pinned packages. Never the
/// `python3` on PATH: a package installed there by hand would hide a missing
/// install step. Panics, saying what to run, when the environment is missing.
pub fn python() -> PathBuf {
    let python = workspace_root().join(".venv-test/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run `bash scripts/setup-tests.sh` first (the README's test command does)",
        python.display()
    );
    python
}

/// A command running the tests' Python.
pub fn python_command() -> Command {
    Command::new(python())
}

/// Bars from a `ts_utc_ns,open,high,low,close,volume` CSV (the layout of the
/// bar files in `../shared/data/real`), in file order.
pub fn read_bars_csv(path: &Path) -> Vec<nq_formats::Bar> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let p = |i: usize| f[i].parse::<f64>().unwrap();
            nq_formats::Bar {
                ts_ns: f[0].parse().unwrap(),
                open: p(1),
                high: p(2),
                low: p(3),
                close: p(4),
                volume: p(5),
            }
        })
        .collect()
}

/// The real NQ 1-minute bars of November 2023 (Globex hours, Thanksgiving's
/// early close and the day after).
pub fn nq_1min_bars() -> Vec<nq_formats::Bar> {
    read_bars_csv(&real_data("nq_firstrate_2023_11/nq_1min_bars_utc.csv"))
}

/// The real ES 1-minute bars of March 2023, across the US switch to
/// daylight saving time.
pub fn es_1min_bars() -> Vec<nq_formats::Bar> {
    read_bars_csv(&real_data("es_firstrate_2023_03/es_1min_bars_utc.csv"))
}

/// Random test fixtures (policy weights, observations) from a generator of
/// the tests' own: xoshiro256++, the engine's sampler when the fixtures and
/// the digests pinned from them were made, so that a change to the
/// project's generator cannot move the goldens that pin the kernels' bits.
pub struct FixtureRng {
    s: [u64; 4],
}

impl FixtureRng {
    pub fn new(seed: u64) -> FixtureRng {
        let mut sm = seed;
        let mut s = [0u64; 4];
        for x in &mut s {
            sm = sm.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            *x = z ^ (z >> 31);
        }
        FixtureRng { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 24 bits.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }
}
