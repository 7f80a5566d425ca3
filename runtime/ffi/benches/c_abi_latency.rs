//! Decision latency through the C ABI: p50 and p99 of `nq_engine_on_tick`
//! calls that close a bar and return a policy decision, over the real NQ
//! 1-minute bars of Nov 2023 replayed as ticks (four per bar; 14,714 bar
//! closes, Globex session so nearly every bar decides), with the trainer's
//! default network (phase 2, hidden 256x256, tanh).
//!
//! Two measurements of the same calls:
//! - `rust`: this process calls the `extern "C"` functions (static linking,
//!   as a C program would), timing each with `Instant` (clock_gettime);
//! - `c`: `examples/c/replay.c` built with `cc -O2` against
//!   `libnq_runtime_ffi.a` from this same build, run with `--bench` (it times
//!   each call with clock_gettime itself).
//!
//! Each without and with `nq_engine_prepare` after every policy decision
//! (untimed: it is idle-time work), the `prepared` lines.
//!
//! Run on one core: `taskset -c 0 cargo bench -p nq-runtime-ffi --bench c_abi_latency`
//! (set `NQ_FFI_BENCH_DIR=dir` to keep the C program and its inputs).

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

use nq_formats::SessionHours;
use nq_runtime_ffi::*;

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn report(label: &str, mut ns: Vec<u64>) {
    ns.sort_unstable();
    let mean = ns.iter().sum::<u64>() as f64 / ns.len() as f64;
    println!(
        "bench {label} n={} p50_ns={} p99_ns={} p99.9_ns={} max_ns={} mean_ns={mean:.0}",
        ns.len(),
        percentile(&ns, 50.0),
        percentile(&ns, 99.0),
        percentile(&ns, 99.9),
        ns[ns.len() - 1]
    );
}

/// Per-call times of one replay over `ticks`.
struct Replay {
    /// Bar-closing ticks that returned a policy decision.
    decision_ns: Vec<u64>,
    other_ns: Vec<u64>,
    /// The `nq_engine_prepare` calls (idle time, not part of the above).
    prepare_ns: Vec<u64>,
    /// Decisions that used the prepared sums.
    prepared: u64,
}

/// With `prepare`, `nq_engine_prepare` runs after each policy decision,
/// outside the timed tick calls, as a live system runs it in idle time.
fn replay(ckpt: &[u8], ticks: &[nq_tick], prepare: bool) -> Replay {
    let mut storage = common::engine_storage();
    let engine = common::init_engine(&mut storage, ckpt);
    let mut decision_ns = Vec::with_capacity(ticks.len() / 4);
    let mut other_ns = Vec::with_capacity(ticks.len());
    let mut prepare_ns = Vec::with_capacity(ticks.len() / 4);
    let mut d = nq_decision::default();
    for tick in ticks {
        let t0 = Instant::now();
        // SAFETY: live engine, valid tick and output.
        let s = unsafe { nq_engine_on_tick(engine, black_box(tick), &mut d) };
        let dt = t0.elapsed().as_nanos() as u64;
        if s == nq_status::NQ_DECISION && d.kind == nq_decision_kind::NQ_KIND_POLICY as i32 {
            decision_ns.push(dt);
            if prepare {
                let t0 = Instant::now();
                // SAFETY: live engine.
                let s = unsafe { nq_engine_prepare(engine) };
                prepare_ns.push(t0.elapsed().as_nanos() as u64);
                assert_eq!(s, nq_status::NQ_OK);
            }
        } else {
            other_ns.push(dt);
        }
    }
    let mut prepared = 0u64;
    // SAFETY: live engine, valid output; then released once.
    unsafe {
        assert_eq!(
            nq_engine_prepared_decisions(engine, &mut prepared),
            nq_status::NQ_OK
        );
        assert_eq!(nq_engine_deinit(engine), nq_status::NQ_OK);
    }
    Replay {
        decision_ns,
        other_ns,
        prepare_ns,
        prepared,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this once
    // too, which is fine: it is quick.
    let spec = common::Spec {
        phase: 2,
        hidden: &[256, 256],
        seed: 11,
        session: SessionHours::GLOBEX,
        max_drawdown: 0.0,
    };
    let bytes = common::checkpoint(&spec);
    let ckpt = common::Aligned::new(&bytes);
    let bars = common::real_bars();
    let csv = common::ticks_csv_of(&bars);
    let ticks = common::ffi_ticks_of(&bars);
    println!(
        "checkpoint: phase 2, hidden 256x256 tanh, {} bytes; {} ticks from {} real bars",
        bytes.len(),
        ticks.len(),
        bars.len()
    );

    // Two rounds, the variants alternating, so that a change in the
    // machine's load hits both alike; each variant's samples are pooled.
    let mut plain = replay(ckpt.bytes(), &ticks, false);
    let mut prepared = replay(ckpt.bytes(), &ticks, true);
    let more = replay(ckpt.bytes(), &ticks, false);
    plain.decision_ns.extend(more.decision_ns);
    plain.other_ns.extend(more.other_ns);
    let more = replay(ckpt.bytes(), &ticks, true);
    prepared.decision_ns.extend(more.decision_ns);
    prepared.other_ns.extend(more.other_ns);
    prepared.prepare_ns.extend(more.prepare_ns);
    prepared.prepared += more.prepared;
    println!(
        "with prepare: {} of {} policy decisions used the prepared sums",
        prepared.prepared,
        prepared.decision_ns.len()
    );
    report("rust_ffi decision_ticks", plain.decision_ns);
    report("rust_ffi decision_ticks prepared", prepared.decision_ns);
    report("rust_ffi other_ticks", plain.other_ns);
    report("rust_ffi other_ticks prepared", prepared.other_ns);
    report("rust_ffi prepare_calls (idle time)", prepared.prepare_ns);

    // The same through the C example, if a C compiler is there.
    // NQ_FFI_BENCH_DIR keeps the checkpoint, ticks and replay binary there,
    // to rerun `replay --bench` by hand (e.g. on a quieter machine).
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("NQ_FFI_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let ckpt_path = dir.join("policy.safetensors");
    let ticks_path = dir.join("ticks.csv");
    std::fs::write(&ckpt_path, &bytes).unwrap();
    std::fs::write(&ticks_path, &csv).unwrap();
    if Command::new("cc").arg("--version").output().is_err() {
        println!("bench c: skipped, no `cc`");
        return;
    }
    let replay = common::build_replay(&dir, true);
    for (label, extra) in [("no_prepare", &["--no-prepare"][..]), ("prepare", &[][..])] {
        let out = Command::new(&replay)
            .arg(&ckpt_path)
            .arg(&ticks_path)
            .arg("--bench")
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            println!("c_replay {label} {line}");
        }
    }
}
