//! The C example, compiled with the system C compiler against
//! `include/nq_runtime.h` and `libnq_runtime_ffi.a`, makes the same decisions
//! as the Rust engine on real data, bit for bit (the C side prepares each
//! next decision in idle time with `nq_engine_prepare`, the Rust side does
//! not).
//!
//! The static library is the one cargo builds for this very test run: the
//! package's lib target has crate types rlib + staticlib + cdylib, and cargo
//! builds all of them in one rustc invocation into `deps/`, beside this test
//! executable, when it builds the rlib that this test links (see
//! `common::staticlib`). So the archive is always from the same source as
//! the Rust side of the comparison.
//!
//! Data: 1,500 real 1-minute bars (Nov 2023) through `nq_engine_on_bar` warm
//! the features up (the warm-up is 132 bars), then the real NQM5 trade ticks
//! of 2025-05-04 22:00-24:00 UTC (Databento, 9,846 prints, 120 bars) go
//! through `nq_engine_on_tick`, then a clock flush. Those ticks are the
//! Sunday Globex open, so the checkpoint is set to the Globex session.

mod common;

use std::collections::HashMap;
use std::process::Command;

use nq_formats::{Bar, SessionHours, Tick};
use nq_runtime::engine::{Decision, DecisionKind, Engine};

const WARMUP_BARS: usize = 1_500;

struct Inputs {
    _dir: tempfile::TempDir,
    checkpoint: std::path::PathBuf,
    bars_csv: std::path::PathBuf,
    checkpoint_bytes: common::Aligned,
    bars: Vec<Bar>,
    ticks: Vec<Tick>,
    replay: std::path::PathBuf,
}

fn inputs() -> Inputs {
    let dir = tempfile::tempdir().unwrap();
    let spec = common::Spec {
        session: SessionHours::GLOBEX,
        ..Default::default()
    };
    let bytes = common::checkpoint(&spec);
    let checkpoint = dir.path().join("policy.safetensors");
    std::fs::write(&checkpoint, &bytes).unwrap();

    let all = common::real_bars();
    let bars = all[all.len() - WARMUP_BARS..].to_vec();
    let mut csv = String::from("ts_utc_ns,open,high,low,close,volume\n");
    for b in &bars {
        csv.push_str(&format!(
            "{},{},{},{},{},{}\n",
            b.ts_ns, b.open, b.high, b.low, b.close, b.volume
        ));
    }
    let bars_csv = dir.path().join("bars.csv");
    std::fs::write(&bars_csv, csv).unwrap();

    let ticks = common::real_ticks();
    let replay = common::build_replay(dir.path(), false);
    Inputs {
        checkpoint,
        bars_csv,
        checkpoint_bytes: common::Aligned::new(&bytes),
        bars,
        ticks,
        replay,
        _dir: dir,
    }
}

/// The Rust engine on the same feed as `replay.c`: bars, ticks, then a flush
/// one bar after the last tick.
fn rust_decisions(inputs: &Inputs) -> Vec<(&'static str, Decision)> {
    let mut engine = Engine::from_checkpoint_bytes(inputs.checkpoint_bytes.bytes()).unwrap();
    let mut out = Vec::new();
    for bar in &inputs.bars {
        if let Some(d) = engine.on_bar(bar) {
            out.push(("bar", d));
        }
    }
    let mut last_ts = 0;
    for tick in &inputs.ticks {
        if let Ok(d) = engine.on_tick(tick) {
            last_ts = tick.ts_ns;
            out.extend(d.map(|d| ("tick", d)));
        }
    }
    if let Some(d) = engine.flush(last_ts + 60_000_000_000) {
        out.push(("flush", d));
    }
    out
}

fn run(inputs: &Inputs, extra: &[&str]) -> String {
    let out = Command::new(&inputs.replay)
        .arg(&inputs.checkpoint)
        .arg(common::REAL_TICKS)
        .arg("--warmup-bars")
        .arg(&inputs.bars_csv)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fields(line: &str) -> HashMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

fn optional(v: &str) -> Option<f64> {
    (v != "none").then(|| v.parse().unwrap())
}

#[test]
fn c_example_decides_as_the_rust_engine_bit_for_bit() {
    let inputs = inputs();
    let expected = rust_decisions(&inputs);
    let stdout = run(&inputs, &[]);
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("decision "))
        .collect();
    assert_eq!(lines.len(), expected.len(), "decision count");

    let policy_from_ticks = expected
        .iter()
        .filter(|(src, d)| *src != "bar" && d.kind == DecisionKind::Policy)
        .count();
    assert!(
        policy_from_ticks >= 100,
        "only {policy_from_ticks} policy decisions on the real ticks"
    );
    let trades = expected
        .iter()
        .filter(|(_, d)| d.target_position != d.position)
        .count();
    assert!(trades > 5, "the random policy should trade: {trades}");

    for (line, (source, d)) in lines.iter().zip(&expected) {
        let f = fields(line);
        let ctx = || format!("C: {line}\nRust: {source} {d:?}");
        assert_eq!(f["source"], *source, "{}", ctx());
        assert_eq!(f["ts_ns"].parse::<i64>().unwrap(), d.ts_ns, "{}", ctx());
        assert_eq!(
            f["bar_ts_ns"].parse::<i64>().unwrap(),
            d.bar_ts_ns,
            "{}",
            ctx()
        );
        assert_eq!(f["kind"], d.kind.name(), "{}", ctx());
        assert_eq!(f["action"], d.action.name(), "{}", ctx());
        assert_eq!(
            f["position"].parse::<i8>().unwrap(),
            d.position,
            "{}",
            ctx()
        );
        assert_eq!(
            f["target_position"].parse::<i8>().unwrap(),
            d.target_position,
            "{}",
            ctx()
        );
        let bits = |x: Option<f64>| x.map(f64::to_bits);
        assert_eq!(bits(optional(f["stop"])), bits(d.stop_price), "{}", ctx());
        assert_eq!(
            bits(optional(f["target"])),
            bits(d.target_price),
            "{}",
            ctx()
        );
        for (key, value) in [("close", d.close), ("atr", d.atr), ("equity", d.equity)] {
            let c: f64 = f[key].parse().unwrap();
            assert_eq!(c.to_bits(), value.to_bits(), "{key}: {}", ctx());
        }
        assert_eq!(f["mask"].parse::<u8>().unwrap(), d.mask.bits(), "{}", ctx());
        assert_eq!(
            f["n_actions"].parse::<u8>().unwrap(),
            d.n_actions,
            "{}",
            ctx()
        );
        let probs: Vec<u32> = f["probs"]
            .split(',')
            .map(|p| p.parse::<f32>().unwrap().to_bits())
            .collect();
        let want: Vec<u32> = d.probs().iter().map(|p| p.to_bits()).collect();
        assert_eq!(probs, want, "probs: {}", ctx());
    }

    let summary = stdout.lines().find(|l| l.starts_with("summary ")).unwrap();
    let s = fields(summary);
    let policy_total = expected
        .iter()
        .filter(|(_, d)| d.kind == DecisionKind::Policy)
        .count();
    assert_eq!(
        s["policy_decisions"].parse::<usize>().unwrap(),
        policy_total
    );
    // replay.c calls nq_engine_prepare after every policy decision; the Rust
    // side above never does, and the decisions are still equal bit for bit.
    let prepared: usize = s["prepared_decisions"].parse().unwrap();
    assert!(
        prepared * 10 > policy_total * 9 && prepared <= policy_total,
        "{prepared} of {policy_total} policy decisions used the prepared sums"
    );
    assert_eq!(s["ticks"].parse::<usize>().unwrap(), inputs.ticks.len());
    assert_eq!(s["rejected"], "0");
    assert_eq!(s["obs_dim"], "231");
    assert_eq!(
        u64::from_str_radix(s["layout_hash"], 16).unwrap(),
        nq_formats::OBS_LAYOUT_V1.hash()
    );
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
}

/// The bench mode times the bar-closing ticks and reports percentiles.
#[test]
fn c_example_bench_mode_reports_latency() {
    let inputs = inputs();
    let stdout = run(&inputs, &["--bench"]);
    assert!(
        !stdout.contains("decision "),
        "bench mode prints no decisions"
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("bench decision_ticks "))
        .expect("bench line");
    let f = fields(line);
    let n: usize = f["n"].parse().unwrap();
    assert!(n >= 100, "{line}");
    let (p50, p99): (u64, u64) = (f["p50_ns"].parse().unwrap(), f["p99_ns"].parse().unwrap());
    assert!(p50 > 0 && p50 <= p99, "{line}");
}

/// `--no-prepare` leaves out the idle-time call: same decisions, none of
/// them from prepared sums.
#[test]
fn c_example_without_prepare_decides_the_same() {
    let inputs = inputs();
    let with = run(&inputs, &[]);
    let without = run(&inputs, &["--no-prepare"]);
    let decisions = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| l.starts_with("decision "))
            .map(String::from)
            .collect()
    };
    assert_eq!(decisions(&without), decisions(&with));
    let summary = without.lines().find(|l| l.starts_with("summary ")).unwrap();
    assert_eq!(fields(summary)["prepared_decisions"], "0", "{summary}");
}
