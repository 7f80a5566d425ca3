//! Shared by the FFI tests and bench: checkpoints made here (no trainer),
//! the real data beside the repository, and building the C example.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use nq_formats::checkpoint::{
    safetensors_bytes, Activation, PolicyMetadata, TensorData, MAX_LAYERS,
};
use nq_formats::{ActionSet, Bar, Instrument, SessionHours, Side, SimConfig, Tick, OBS_LAYOUT_V1};
use nq_runtime::sim::{EntryFill, ExitReason, TradeRecord};
use nq_runtime_ffi::{nq_decision, nq_engine, nq_engine_init, nq_engine_size, nq_error};
use nq_test_support::FixtureRng as Rng;

/// What a test checkpoint varies.
#[derive(Clone, Copy)]
pub struct Spec<'a> {
    pub phase: u8,
    pub hidden: &'a [u32],
    pub seed: u64,
    pub session: SessionHours,
    /// 0 disables the trailing drawdown, so a random policy trades throughout.
    pub max_drawdown: f64,
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Spec {
            phase: 2,
            hidden: &[32, 32],
            seed: 7,
            session: SessionHours::RTH,
            max_drawdown: 0.0,
        }
    }
}

pub fn metadata(spec: &Spec<'_>) -> PolicyMetadata {
    let mut hidden = [0u32; MAX_LAYERS];
    hidden[..spec.hidden.len()].copy_from_slice(spec.hidden);
    let sim = SimConfig {
        session: spec.session,
        max_drawdown: spec.max_drawdown,
        ..SimConfig::default()
    };
    PolicyMetadata {
        format_version: 1,
        obs_layout_hash: OBS_LAYOUT_V1.hash(),
        obs_dim: OBS_LAYOUT_V1.obs_dim(spec.phase),
        actions: ActionSet::from_phase(spec.phase).unwrap(),
        hidden,
        hidden_len: spec.hidden.len(),
        activation: Activation::Tanh,
        phase: spec.phase,
        instrument: Instrument::Nq,
        bar_seconds: 60,
        timesteps: 1000,
        update: 1,
        seed: spec.seed,
        norm_clip: 5.0,
        norm_eps: 1e-8,
        sim,
    }
}

/// A checkpoint with random (PyTorch-style) actor weights and normaliser.
pub fn checkpoint_with(meta: &PolicyMetadata, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut uniform = |bound: f32| (rng.next_f32() * 2.0 - 1.0) * bound;
    let mut widths = vec![meta.obs_dim];
    widths.extend(meta.hidden().iter().map(|&h| h as usize));
    widths.push(meta.actions.len());
    let mut owned: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    for (i, pair) in widths.windows(2).enumerate() {
        let (n_in, n_out) = (pair[0], pair[1]);
        let bound = 1.0 / (n_in as f32).sqrt();
        let w = (0..n_in * n_out).map(|_| uniform(bound)).collect();
        let b = (0..n_out).map(|_| uniform(bound)).collect();
        owned.push((format!("actor.{i}.weight"), vec![n_out, n_in], w));
        owned.push((format!("actor.{i}.bias"), vec![n_out], b));
    }
    let dim = meta.obs_dim;
    let mean = (0..dim).map(|_| uniform(0.5)).collect();
    let var = (0..dim).map(|_| 0.25 + uniform(1.0).abs() * 2.0).collect();
    owned.push(("obs_norm.mean".into(), vec![dim], mean));
    owned.push(("obs_norm.var".into(), vec![dim], var));
    let tensors: Vec<TensorData<'_>> = owned
        .iter()
        .map(|(name, shape, values)| TensorData {
            name,
            shape,
            values,
        })
        .collect();
    safetensors_bytes(&tensors, meta)
}

pub fn checkpoint(spec: &Spec<'_>) -> Vec<u8> {
    checkpoint_with(&metadata(spec), spec.seed)
}

/// Bytes at an 8-byte aligned address, as `malloc` would give a C caller.
pub struct Aligned {
    words: Vec<u64>,
    len: usize,
}

impl Aligned {
    pub fn new(bytes: &[u8]) -> Aligned {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        // SAFETY: the u64 buffer holds at least `bytes.len()` bytes.
        let dst =
            unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), bytes.len()) };
        dst.copy_from_slice(bytes);
        Aligned {
            words,
            len: bytes.len(),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes of the buffer were initialised in `new`.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }
}

pub const REAL_BARS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/real/nq_firstrate_2023_11/nq_1min_bars_utc.csv"
);
pub const REAL_TICKS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/real/nq_databento_trades_2025_05_04/nqm5_trades_utc.csv"
);

/// The real NQ 1-minute bars (14,714, Nov 2023).
pub fn real_bars() -> Vec<Bar> {
    std::fs::read_to_string(REAL_BARS)
        .unwrap_or_else(|e| panic!("{REAL_BARS} (real data beside the repository): {e}"))
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let p = |i: usize| f[i].parse::<f64>().unwrap();
            Bar {
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

/// The real NQM5 trade prints of 2025-05-04 22:00-24:00 UTC (9,846, the
/// Sunday Globex open).
pub fn real_ticks() -> Vec<Tick> {
    std::fs::read_to_string(REAL_TICKS)
        .unwrap_or_else(|e| panic!("{REAL_TICKS} (real data beside the repository): {e}"))
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Tick {
                ts_ns: f[0].parse().unwrap(),
                price: f[1].parse().unwrap(),
                size: f[2].parse().unwrap(),
                side: Side::from_letter(f[3]).unwrap(),
            }
        })
        .collect()
}

/// Four ticks per bar (open, high, low, close) inside the minute: the bars
/// the engine builds from them are the original bars. CSV text as the C
/// example reads it.
pub fn ticks_csv_of(bars: &[Bar]) -> String {
    let mut out = String::from("ts_utc_ns,price,size,side\n");
    for b in bars {
        let quarter = (b.volume / 4.0).floor();
        let sizes = [b.volume - 3.0 * quarter, quarter, quarter, quarter];
        for (k, (price, size)) in [b.open, b.high, b.low, b.close]
            .into_iter()
            .zip(sizes)
            .enumerate()
        {
            out.push_str(&format!(
                "{},{price},{size},N\n",
                b.ts_ns + k as i64 * 10_000_000_000
            ));
        }
    }
    out
}

/// [`ticks_csv_of`]'s ticks as the C ABI takes them.
pub fn ffi_ticks_of(bars: &[Bar]) -> Vec<nq_runtime_ffi::nq_tick> {
    ticks_csv_of(bars)
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            nq_runtime_ffi::nq_tick {
                ts_ns: f[0].parse().unwrap(),
                price: f[1].parse().unwrap(),
                size: f[2].parse().unwrap(),
                side: nq_runtime_ffi::nq_side::NQ_SIDE_NONE as i32,
            }
        })
        .collect()
}

/// The Rust library's static archive, from the same build as the rlib this
/// test links. The lib target's crate types (rlib, staticlib, cdylib) come
/// out of one rustc invocation into `deps/`, the test executable's own
/// directory; `cargo build` also copies them one level up, which is the
/// fallback.
pub fn staticlib() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let candidates = [
        deps.join("libnq_runtime_ffi.a"),
        deps.parent().unwrap().join("libnq_runtime_ffi.a"),
    ];
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| panic!("libnq_runtime_ffi.a not found at {candidates:?}"))
}

/// Compiles `examples/c/replay.c` against the header and the static library
/// into `dir`, with warnings as errors.
pub fn build_replay(dir: &Path, optimize: bool) -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = dir.join("replay");
    let out = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg(if optimize { "-O2" } else { "-O0" })
        .arg("-I")
        .arg(crate_dir.join("include"))
        .arg(crate_dir.join("examples/c/replay.c"))
        .arg(staticlib())
        .args([
            "-lgcc_s",
            "-lutil",
            "-lrt",
            "-lpthread",
            "-lm",
            "-ldl",
            "-lc",
        ])
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("the system C compiler `cc`");
    assert!(
        out.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// `nq_engine_size()` bytes at 8-byte alignment, as a C caller provides them.
pub fn engine_storage() -> Vec<u64> {
    vec![0u64; nq_engine_size().div_ceil(8)]
}

/// An engine in `storage` over `ckpt`; panics with the library's message if
/// it refuses. The caller keeps both alive until `nq_engine_deinit`.
pub fn init_engine(storage: &mut [u64], ckpt: &[u8]) -> *mut nq_engine {
    let mut err = nq_error::default();
    // SAFETY: the pointers and lengths describe live buffers.
    let e = unsafe {
        nq_engine_init(
            storage.as_mut_ptr().cast(),
            storage.len() * 8,
            ckpt.as_ptr(),
            ckpt.len(),
            &mut err,
        )
    };
    assert!(!e.is_null(), "{}", err.message_str());
    e
}

/// Every field of a C decision, floats as bits.
pub fn decision_bits(d: &nq_decision) -> Vec<u64> {
    let mut v = vec![
        d.kind as u64,
        d.ts_ns as u64,
        d.bar_ts_ns as u64,
        d.action as u64,
        d.position as u64,
        d.target_position as u64,
        d.has_stop as u64,
        d.stop_price.to_bits(),
        d.has_target as u64,
        d.target_price.to_bits(),
        d.n_actions as u64,
        d.mask as u64,
        d.close.to_bits(),
        d.atr.to_bits(),
        d.equity.to_bits(),
    ];
    v.extend(d.probs.iter().map(|p| p.to_bits() as u64));
    v
}

/// Every field of the Rust engine's entry fill, floats as bits, in
/// `nq_entry_fill` order (signed fields sign-extended).
pub fn entry_fill_bits(f: &EntryFill) -> Vec<u64> {
    vec![
        f.ts_ns as u64,
        f.side as i64 as u64,
        f.contracts as u64,
        f.price.to_bits(),
        f.stop_price.to_bits(),
        f.target_price.to_bits(),
        f.commission.to_bits(),
    ]
}

/// Every field of the Rust engine's trade record, floats as bits, in
/// `nq_trade` order (the exit reason as its `nq_exit_reason` code).
pub fn trade_record_bits(t: &TradeRecord) -> Vec<u64> {
    vec![
        t.side as i64 as u64,
        t.contracts as u64,
        t.entry_ts_ns as u64,
        t.exit_ts_ns as u64,
        t.entry_price.to_bits(),
        t.exit_price.to_bits(),
        t.gross_pnl.to_bits(),
        t.commission.to_bits(),
        t.net_pnl.to_bits(),
        ExitReason::ALL
            .iter()
            .position(|r| *r == t.exit_reason)
            .unwrap() as u64,
        t.bars_held as u64,
        t.mae.to_bits(),
        t.mfe.to_bits(),
    ]
}
