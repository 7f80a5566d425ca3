//! The same ticks through `nq-signal` (lines on stdin) and through `nq-eval`
//! (Parquet) give the same decisions, bar for bar, binary against binary:
//! time, kind, position, action, target position, probabilities and mask,
//! and equity, stop, target, close and ATR bitwise (from the decision rows
//! of `equity.parquet`, which also has a row at every bar close without one).
//!
//! Real data: the 2025-05-04 Databento NQ trades cover 120 minutes, fewer
//! than the 132-bar feature warm-up, so they follow real FirstRate 1-minute
//! NQ bars (2023-12-04) written as four ticks per bar (open, the extreme
//! nearer the open, the other extreme, close). nq-eval reads both as one
//! stream of two Parquet files (ordered by first timestamp); nq-signal warms
//! up on the first (`--warmup`) and reads the raw trades CSV on stdin.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use arrow_array::{Array, Float32Array, Float64Array, Int8Array, StringArray, UInt8Array};
use nq_formats::{Action, Side, Tick};
use nq_tools::market_data::{MarketReader, TickWriter};

#[path = "support/report.rs"]
mod report;
use report::{column, decision_rows, read_batch};

const NQ_SIGNAL: &str = env!("CARGO_BIN_EXE_nq-signal");
const NQ_EVAL: &str = env!("CARGO_BIN_EXE_nq-eval");
const NQ_DATA: &str = env!("CARGO_BIN_EXE_nq-data");
const P1: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../runtime/fixtures/policy/policy_tanh_p1.safetensors"
);
const SYNTH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../data/nq_synth_ticks.parquet"
);
const REAL_TRADES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/real/nq_databento_trades_2025_05_04/nqm5_trades_utc.csv"
);
const REAL_BARS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/real/nq_firstrate_2023_11/nq_1min_bars_utc.csv"
);

/// The fixture's $2,500 trailing drawdown limit is breached within hours,
/// after which every decision is a forced HOLD: without a limit the policy
/// decides every bar, which is what is worth comparing.
const NO_DRAWDOWN_LIMIT: [&str; 2] = ["--drawdown-limit", "0"];

/// One `equity.parquet` row of the policy run.
#[derive(Debug)]
struct EvalRow {
    ts_ns: i64,
    kind: String,
    equity: f64,
    position: i8,
    action: String,
    target_position: i8,
    probs: Vec<f32>,
    mask: u8,
    stop: Option<f64>,
    target: Option<f64>,
    close: f64,
    atr: f64,
}

/// nq-eval over `data`, its policy run's decision rows.
fn eval_decisions(dir: &Path, data: &[&Path], args: &[&str]) -> Vec<EvalRow> {
    let report = dir.join("report");
    let out = Command::new(NQ_EVAL)
        .args(["--null-seeds", "0"])
        .arg(P1)
        .args(data)
        .args(args)
        .args(NO_DRAWDOWN_LIMIT)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let b = read_batch(&report.join("equity.parquet"));
    let policy = column::<StringArray>(&b, "policy");
    let ts = b
        .column_by_name("ts")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::TimestampNanosecondArray>()
        .unwrap();
    let equity = column::<Float64Array>(&b, "equity_usd");
    let position = column::<Int8Array>(&b, "position");
    let action = column::<StringArray>(&b, "action_name");
    let mask = column::<UInt8Array>(&b, "mask");
    let kind = column::<StringArray>(&b, "kind");
    let target_position = column::<Int8Array>(&b, "target_position");
    let stop = column::<Float64Array>(&b, "stop_price");
    let target = column::<Float64Array>(&b, "target_price");
    let close = column::<Float64Array>(&b, "close");
    let atr = column::<Float64Array>(&b, "atr");
    let optional = |a: &Float64Array, r: usize| (!a.is_null(r)).then(|| a.value(r));
    let probs: Vec<&Float32Array> = Action::ALL[..3]
        .iter()
        .map(|a| column::<Float32Array>(&b, &nq_formats::schema::probability_column(*a)))
        .collect();
    decision_rows(&b)
        .into_iter()
        .filter(|&r| policy.value(r) == "policy_tanh_p1")
        .map(|r| EvalRow {
            ts_ns: ts.value(r),
            kind: kind.value(r).to_string(),
            equity: equity.value(r),
            position: position.value(r),
            action: action.value(r).to_string(),
            target_position: target_position.value(r),
            probs: probs.iter().map(|p| p.value(r)).collect(),
            mask: mask.value(r),
            stop: optional(stop, r),
            target: optional(target, r),
            close: close.value(r),
            atr: atr.value(r),
        })
        .collect()
}

/// The raw text of `key`'s value in one output line (numbers are compared
/// as text parsed by the standard library, so no JSON library rounds them).
fn raw<'a>(line: &'a str, key: &str) -> &'a str {
    let pat = format!("\"{key}\":");
    let start = line.find(&pat).unwrap_or_else(|| panic!("{key} in {line}")) + pat.len();
    let rest = &line[start..];
    let end = if rest.starts_with('{') {
        rest.find('}').unwrap() + 1
    } else if rest.starts_with('[') {
        rest.find(']').unwrap() + 1
    } else {
        rest.find([',', '}']).unwrap()
    };
    &rest[..end]
}

fn opt_f64(text: &str) -> Option<f64> {
    (text != "null").then(|| text.parse().unwrap())
}

/// One round trip of the policy run in `trades.parquet`.
#[derive(Debug, PartialEq)]
struct EvalTrade {
    entry_ts_ns: i64,
    exit_ts_ns: i64,
    side: i64,
    entry_price: f64,
    exit_price: f64,
    net_pnl: f64,
    reason: String,
}

fn eval_trades(dir: &Path) -> Vec<EvalTrade> {
    let b = read_batch(&dir.join("report").join("trades.parquet"));
    let policy = column::<StringArray>(&b, "policy");
    let time = |name| column::<arrow_array::TimestampNanosecondArray>(&b, name);
    let (entry_ts, exit_ts) = (time("entry_time"), time("exit_time"));
    let side = column::<StringArray>(&b, "side");
    let entry = column::<Float64Array>(&b, "entry_price");
    let exit = column::<Float64Array>(&b, "exit_price");
    let pnl = column::<Float64Array>(&b, "pnl_usd");
    let reason = column::<StringArray>(&b, "exit_reason");
    (0..b.num_rows())
        .filter(|&r| policy.value(r) == "policy_tanh_p1")
        .map(|r| EvalTrade {
            entry_ts_ns: entry_ts.value(r),
            exit_ts_ns: exit_ts.value(r),
            side: if side.value(r) == "LONG" { 1 } else { -1 },
            entry_price: entry.value(r),
            exit_price: exit.value(r),
            net_pnl: pnl.value(r),
            reason: reason.value(r).to_string(),
        })
        .collect()
}

/// The simulated account's `sim_entry` and `sim_exit` lines, as the
/// round trips they make.
fn signal_trades(lines: &[String]) -> Vec<EvalTrade> {
    let mut entry: Option<(i64, f64)> = None;
    let mut trades = Vec::new();
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        match v["type"].as_str().unwrap() {
            "sim_entry" => {
                entry = Some((
                    v["ts_utc_ns"].as_i64().unwrap(),
                    v["price"].as_f64().unwrap(),
                ))
            }
            "sim_exit" => {
                let (entry_ts_ns, price) = entry.take().expect("an exit without an entry");
                assert_eq!(v["entry_price"].as_f64(), Some(price), "{line}");
                trades.push(EvalTrade {
                    entry_ts_ns,
                    exit_ts_ns: v["ts_utc_ns"].as_i64().unwrap(),
                    side: v["side"].as_i64().unwrap(),
                    entry_price: price,
                    exit_price: v["exit_price"].as_f64().unwrap(),
                    net_pnl: v["net_pnl"].as_f64().unwrap(),
                    reason: v["reason"].as_str().unwrap().to_string(),
                });
            }
            _ => {}
        }
    }
    trades
}

/// The decision lines among nq-signal's output lines.
fn decisions(lines: Vec<String>) -> Vec<String> {
    lines
        .into_iter()
        .filter(|l| l.starts_with("{\"type\":\"decision\""))
        .collect()
}

/// Every line nq-signal writes for `stdin`.
fn signal_lines(args: &[&dyn AsRef<std::ffi::OsStr>], stdin: &[u8]) -> Vec<String> {
    let mut cmd = Command::new(NQ_SIGNAL);
    cmd.arg(P1).args(NO_DRAWDOWN_LIMIT);
    for a in args {
        cmd.arg(a);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    for line in text.lines() {
        assert!(
            ["decision", "sim_entry", "sim_exit", "warmup_end"]
                .iter()
                .any(|t| line.starts_with(&format!("{{\"type\":\"{t}\""))),
            "no fills, no bad lines, no breach: {line}"
        );
    }
    text.lines().map(str::to_string).collect()
}

fn assert_same(signal: &[String], eval: &[EvalRow]) {
    assert_eq!(signal.len(), eval.len(), "decision counts differ");
    for (k, (line, row)) in signal.iter().zip(eval).enumerate() {
        let ctx = || format!("decision {k}: {line}\n{row:?}");
        assert_eq!(
            raw(line, "ts_utc_ns").parse::<i64>().unwrap(),
            row.ts_ns,
            "{}",
            ctx()
        );
        assert_eq!(
            raw(line, "action"),
            format!("\"{}\"", row.action),
            "{}",
            ctx()
        );
        assert_eq!(
            raw(line, "position").parse::<i8>().unwrap(),
            row.position,
            "{}",
            ctx()
        );
        let equity: f64 = raw(line, "equity").parse().unwrap();
        assert_eq!(equity.to_bits(), row.equity.to_bits(), "{}", ctx());
        let probs = raw(line, "probs");
        let probs: Vec<f32> = probs[1..probs.len() - 1]
            .split(',')
            .map(|kv| kv.split(':').nth(1).unwrap().parse().unwrap())
            .collect();
        let bits = |v: &[f32]| v.iter().map(|p| p.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&probs), bits(&row.probs), "{}", ctx());
        let mask = raw(line, "mask");
        let mask = mask[1..mask.len() - 1]
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| Action::from_name(s.trim_matches('"')).unwrap().code())
            .fold(0u8, |m, c| m | (1 << c));
        assert_eq!(mask, row.mask, "{}", ctx());
        assert_eq!(
            raw(line, "target_position").parse::<i8>().unwrap(),
            row.target_position,
            "{}",
            ctx()
        );
        assert_eq!(raw(line, "kind"), format!("\"{}\"", row.kind), "{}", ctx());
        let same = |a: Option<f64>, b: Option<f64>| a.map(f64::to_bits) == b.map(f64::to_bits);
        assert!(same(opt_f64(raw(line, "stop")), row.stop), "{}", ctx());
        assert!(same(opt_f64(raw(line, "target")), row.target), "{}", ctx());
        assert!(
            same(opt_f64(raw(line, "close")), Some(row.close)),
            "{}",
            ctx()
        );
        assert!(same(opt_f64(raw(line, "atr")), Some(row.atr)), "{}", ctx());
    }
}

fn csv(ticks: &[Tick]) -> Vec<u8> {
    let mut text = b"ts_utc_ns,price,size,side\n".to_vec();
    for t in ticks {
        let side = match t.side {
            Side::Buy => "B",
            Side::Sell => "A",
            Side::None => "N",
        };
        writeln!(text, "{},{},{},{side}", t.ts_ns, t.price, t.size).unwrap();
    }
    text
}

fn write_ticks(path: &Path, ticks: &[Tick]) {
    let mut w = TickWriter::create(path).unwrap();
    w.write(ticks).unwrap();
    w.finish().unwrap();
}

#[test]
fn synthetic_ticks_piped_as_csv_decide_as_nq_eval() {
    let tmp = tempfile::tempdir().unwrap();
    let all = MarketReader::open(SYNTH).unwrap().read_all_ticks().unwrap();
    // Three sessions (Sunday evening to Wednesday evening) keep it quick.
    let end = all[0].ts_ns + 3 * 86_400_000_000_000;
    let ticks: Vec<Tick> = all.into_iter().take_while(|t| t.ts_ns < end).collect();
    let data = tmp.path().join("ticks.parquet");
    write_ticks(&data, &ticks);
    let eval = eval_decisions(tmp.path(), &[&data], &[]);
    let lines = signal_lines(&[], &csv(&ticks));
    // The simulated account's fills and exits are nq-eval's trades, all but
    // the backtest's close at the end of the data, which live has not.
    let mut trades = eval_trades(tmp.path());
    trades.retain(|t| t.reason != "END_OF_DATA");
    assert!(trades.len() >= 20, "{} trades", trades.len());
    assert_eq!(signal_trades(&lines), trades);
    let signal = decisions(lines);
    let policy = signal
        .iter()
        .filter(|l| raw(l, "kind") == "\"policy\"")
        .count();
    assert!(policy >= 500, "only {policy} policy decisions");
    eprintln!("synthetic: {policy} policy decisions of {}", signal.len());
    assert!(
        signal.iter().any(|l| !l.contains("\"action\":\"HOLD\"")),
        "the policy never trades here: a weak comparison"
    );
    assert_same(&signal, &eval);
}

/// Real 1-minute bars as ticks: open, the nearer extreme, the farther one, close.
fn bar_ticks(csv_path: &str, last_bars: usize) -> Vec<Tick> {
    let text = std::fs::read_to_string(csv_path).unwrap();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    let mut ticks = Vec::new();
    for row in &rows[rows.len() - last_bars..] {
        let f: Vec<f64> = row.split(',').map(|v| v.parse().unwrap()).collect();
        let ts = row.split(',').next().unwrap().parse::<i64>().unwrap();
        let (open, high, low, close, volume) = (f[1], f[2], f[3], f[4], f[5]);
        let (first, second) = if high - open <= open - low {
            (high, low)
        } else {
            (low, high)
        };
        let size = (volume / 4.0).floor().max(1.0);
        for (k, price) in [open, first, second, close].into_iter().enumerate() {
            ticks.push(Tick {
                ts_ns: ts + k as i64 * 15_000_000_000,
                price,
                size,
                side: Side::None,
            });
        }
    }
    ticks
}

#[test]
fn real_trades_after_real_bar_warmup_decide_as_nq_eval() {
    let tmp = tempfile::tempdir().unwrap();
    let warm_ticks = bar_ticks(REAL_BARS, 600);
    let warm = tmp.path().join("warm.parquet");
    write_ticks(&warm, &warm_ticks);
    let trades = tmp.path().join("trades.parquet");
    let out = Command::new(NQ_DATA)
        .args(["import", REAL_TRADES, "-o"])
        .arg(&trades)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // The trades are a Sunday evening: only the Globex session decides there.
    let session = ["--session", "GLOBEX"];
    let eval = eval_decisions(tmp.path(), &[&trades, &warm], &session);
    let raw_csv = std::fs::read(REAL_TRADES).unwrap();
    let lines = signal_lines(
        &[
            &"--warmup",
            &warm,
            &"--show-warmup",
            &session[0],
            &session[1],
        ],
        &raw_csv,
    );
    let first_real = 1_746_396_000_000_000_000;
    // The exits on stdin's ticks are nq-eval's trades that closed there
    // (the warm-up's are not printed; the end of the data is the backtest's).
    let exits: Vec<(i64, String, i64, f64, f64, f64)> = lines
        .iter()
        .filter(|l| l.starts_with("{\"type\":\"sim_exit\""))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["ts_utc_ns"].as_i64().unwrap(),
                v["reason"].as_str().unwrap().to_string(),
                v["side"].as_i64().unwrap(),
                v["entry_price"].as_f64().unwrap(),
                v["exit_price"].as_f64().unwrap(),
                v["net_pnl"].as_f64().unwrap(),
            )
        })
        .collect();
    let closed_live: Vec<(i64, String, i64, f64, f64, f64)> = eval_trades(tmp.path())
        .into_iter()
        .filter(|t| t.exit_ts_ns >= first_real && t.reason != "END_OF_DATA")
        .map(|t| {
            (
                t.exit_ts_ns,
                t.reason,
                t.side,
                t.entry_price,
                t.exit_price,
                t.net_pnl,
            )
        })
        .collect();
    assert!(closed_live.len() >= 5, "{} trades", closed_live.len());
    assert_eq!(exits, closed_live);
    let signal = decisions(lines);
    let live: Vec<&String> = signal
        .iter()
        .filter(|l| !l.contains("\"warmup\":true"))
        .collect();
    // The warm-up's last bar is still open when it ends; the first real
    // trade closes it, so one live decision may be about 2023.
    let on_real = live
        .iter()
        .filter(|l| raw(l, "ts_utc_ns").parse::<i64>().unwrap() > first_real)
        .count();
    assert!(live.len() - on_real <= 1, "{live:?}");
    let policy_on_real = live
        .iter()
        .filter(|l| raw(l, "ts_utc_ns").parse::<i64>().unwrap() > first_real)
        .filter(|l| raw(l, "kind") == "\"policy\"")
        .count();
    assert!(
        policy_on_real >= 100,
        "only {policy_on_real} policy decisions on the real trades"
    );
    assert!(signal.len() >= 500, "{} decisions", signal.len());
    assert!(
        signal.iter().any(|l| !l.contains("\"action\":\"HOLD\"")),
        "the policy never trades here: a weak comparison"
    );
    eprintln!(
        "real: {policy_on_real} policy decisions on the trades, {} in all",
        signal.len()
    );
    assert_same(&signal, &eval);
}
