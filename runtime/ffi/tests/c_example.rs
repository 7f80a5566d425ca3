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
use nq_runtime::engine::{Decision, DecisionKind, Engine, EngineConfig, Sampling, Step};
use nq_runtime::policy::{Checkpoint, Policy};
use nq_runtime::sim::ExitReason;

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
        if let Some(d) = engine.on_bar(bar).ok().and_then(|s| s.decision) {
            out.push(("bar", d));
        }
    }
    let mut last_ts = 0;
    for tick in &inputs.ticks {
        if let Ok(d) = engine.on_tick(tick) {
            last_ts = tick.ts_ns;
            out.extend(d.decision.map(|d| ("tick", d)));
        }
    }
    if let Some(d) = engine.flush(last_ts + 60_000_000_000).decision {
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

/// One line `replay --trades` prints for the simulated account.
#[derive(Debug, PartialEq)]
enum AccountLine {
    Entry(&'static str, Vec<u64>),
    Trade(&'static str, Vec<u64>),
    Breach(&'static str, i64),
}

/// The Rust engine with `edit`ed settings on `replay.c`'s feed: the account
/// lines it should print, and the decision count.
fn rust_account(
    inputs: &Inputs,
    edit: impl FnOnce(&mut EngineConfig),
) -> (Vec<AccountLine>, usize) {
    let bytes = inputs.checkpoint_bytes.bytes();
    let policy = Policy::from_checkpoint(&Checkpoint::parse(bytes).unwrap()).unwrap();
    let mut config = EngineConfig::from_policy(&policy);
    edit(&mut config);
    let mut engine = Engine::new(policy, config).unwrap();
    let mut lines = Vec::new();
    let mut decisions = 0;
    let mut record = |source: &'static str, ts_ns: i64, step: &Step| {
        if let Some(f) = &step.entry {
            lines.push(AccountLine::Entry(source, common::entry_fill_bits(f)));
        }
        for t in step.exits() {
            lines.push(AccountLine::Trade(source, common::trade_record_bits(t)));
        }
        if step.breached {
            lines.push(AccountLine::Breach(source, ts_ns));
        }
        step.decision.is_some() as usize
    };
    for bar in &inputs.bars {
        if let Ok(step) = engine.on_bar(bar) {
            decisions += record("bar", bar.ts_ns, &step);
        }
    }
    let mut last_ts = 0;
    for tick in &inputs.ticks {
        if let Ok(step) = engine.on_tick(tick) {
            last_ts = tick.ts_ns;
            decisions += record("tick", tick.ts_ns, &step);
        }
    }
    let end = last_ts + 60_000_000_000;
    decisions += record("flush", end, &engine.flush(end));
    for t in engine.end_of_data(end).exits() {
        lines.push(AccountLine::Trade(
            "end_of_data",
            common::trade_record_bits(t),
        ));
    }
    (lines, decisions)
}

fn source(s: &str) -> &'static str {
    ["bar", "tick", "flush", "end_of_data"]
        .into_iter()
        .find(|known| *known == s)
        .unwrap_or_else(|| panic!("unknown source {s}"))
}

fn c_account(stdout: &str) -> Vec<AccountLine> {
    let float = |f: &HashMap<&str, &str>, k: &str| f[k].parse::<f64>().unwrap().to_bits();
    let int = |f: &HashMap<&str, &str>, k: &str| f[k].parse::<i64>().unwrap() as u64;
    stdout
        .lines()
        .filter_map(|line| {
            let f = fields(line);
            let kind = line.split_whitespace().next()?;
            Some(match kind {
                "entry" => AccountLine::Entry(
                    source(f["source"]),
                    vec![
                        int(&f, "ts_ns"),
                        int(&f, "side"),
                        int(&f, "contracts"),
                        float(&f, "price"),
                        float(&f, "stop"),
                        float(&f, "target"),
                        float(&f, "commission"),
                    ],
                ),
                "trade" => AccountLine::Trade(
                    source(f["source"]),
                    vec![
                        int(&f, "side"),
                        int(&f, "contracts"),
                        int(&f, "entry_ts_ns"),
                        int(&f, "exit_ts_ns"),
                        float(&f, "entry_price"),
                        float(&f, "exit_price"),
                        float(&f, "gross_pnl"),
                        float(&f, "commission"),
                        float(&f, "net_pnl"),
                        ExitReason::from_name(f["exit_reason"]).map_or(99, |r| {
                            ExitReason::ALL.iter().position(|x| *x == r).unwrap() as u64
                        }),
                        int(&f, "bars_held"),
                        float(&f, "mae"),
                        float(&f, "mfe"),
                    ],
                ),
                "breach" => AccountLine::Breach(source(f["source"]), f["ts_ns"].parse().unwrap()),
                _ => return None,
            })
        })
        .collect()
}

/// `--trades` prints the simulated account's entries, closed trades and
/// breaches after every call, and closes the last position with
/// `nq_engine_end_of_data`: equal to the Rust engine's events bit for bit,
/// with the checkpoint's settings and with options given on the command
/// line (costs, a $400 drawdown limit that breaches, sampled decisions).
/// Without the flag the output has none of those lines.
#[test]
fn c_example_prints_the_trades_of_the_rust_engine() {
    let inputs = inputs();
    let plain = run(&inputs, &[]);
    assert!(c_account(&plain).is_empty() && !plain.contains("trades count="));

    let (want, _) = rust_account(&inputs, |_| {});
    let stdout = run(&inputs, &["--trades"]);
    let got = c_account(&stdout);
    assert_eq!(got, want);
    let closed: Vec<f64> = want
        .iter()
        .filter_map(|l| match l {
            AccountLine::Trade(_, bits) => Some(f64::from_bits(bits[8])),
            _ => None,
        })
        .collect();
    assert!(closed.len() > 10, "{} trades", closed.len());
    let totals = fields(stdout.lines().find(|l| l.starts_with("trades ")).unwrap());
    assert_eq!(totals["count"].parse::<usize>().unwrap(), closed.len());
    let sum: f64 = closed.iter().sum();
    assert_eq!(
        totals["net_pnl"].parse::<f64>().unwrap().to_bits(),
        sum.to_bits()
    );

    let (want, decisions) = rust_account(&inputs, |c| {
        c.sim.commission_per_side = 1.25;
        c.sim.slippage_ticks = 2.0;
        c.sim.max_drawdown = 400.0;
        c.sampling = Sampling::Sample { seed: 9 };
    });
    let stdout = run(
        &inputs,
        &[
            "--trades",
            "--commission",
            "1.25",
            "--slippage-ticks",
            "2",
            "--drawdown-limit",
            "400",
            "--sample",
            "9",
        ],
    );
    assert_eq!(c_account(&stdout), want);
    assert!(want.iter().any(|l| matches!(l, AccountLine::Breach(..))));
    let c_decisions = stdout
        .lines()
        .filter(|l| l.starts_with("decision "))
        .count();
    assert_eq!(c_decisions, decisions);
}

/// A bad option is refused by the library, named, exit code 2.
#[test]
fn c_example_refuses_a_bad_session() {
    let inputs = inputs();
    let out = Command::new(&inputs.replay)
        .arg(&inputs.checkpoint)
        .arg(common::REAL_TICKS)
        .args(["--session", "9:30-25:00"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("NQ_ERR_OPTIONS") && stderr.contains("options.session \"9:30-25:00\""),
        "{stderr}"
    );
}
