//! `nq-eval` end to end: the real binary over a few synthetic days and the
//! runtime's fixture checkpoints. Reports read back agree with the summary,
//! reruns are byte-identical, and user errors exit 2 with no report folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow_array::{
    Array, Float64Array, Int64Array, Int8Array, RecordBatch, StringArray, TimestampNanosecondArray,
    UInt8Array,
};
use nq_formats::{Action, SimConfig, Tick};

#[path = "support/report.rs"]
mod report;
use report::{column, decision_rows, read_batch, NO_DECISION};
#[path = "support/closed_stdout.rs"]
mod closed_stdout;
use closed_stdout::{assert_quiet_success, run_with_closed_stdout};
use nq_tools::eval::report::REPORT_FILES;

const NQ_EVAL: &str = env!("CARGO_BIN_EXE_nq-eval");
const NQ_DATA: &str = env!("CARGO_BIN_EXE_nq-data");
const P1: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../runtime/fixtures/policy/policy_tanh_p1.safetensors"
);
const P2: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../runtime/fixtures/policy/policy_relu_p2.safetensors"
);

fn synth_ticks(dir: &Path) -> PathBuf {
    let out = dir.join("ticks.parquet");
    let status = Command::new(NQ_DATA)
        .args(["synth", "--days", "3", "--seed", "3"])
        .args(["--ticks-per-rth-minute", "20", "--out"])
        .arg(&out)
        .output()
        .expect("nq-data runs");
    assert!(status.status.success(), "{status:?}");
    out
}

/// nq-eval with `args`, and a small random-action null unless `args` set
/// one (the default 100 replays would make every test slow; the null is
/// tested on its own).
fn eval(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new(NQ_EVAL);
    for a in args {
        cmd.arg(a);
    }
    if !args.iter().any(|a| a.as_ref() == "--null-seeds") {
        cmd.args(["--null-seeds", "4"]);
    }
    cmd.output().expect("nq-eval runs")
}

/// The simulator settings the fixture checkpoint `path` was trained with.
fn checkpoint_sim(path: &str) -> SimConfig {
    let ckpt = nq_tools::checkpoint_file::CheckpointFile::read(path).unwrap();
    *ckpt.engine(None).unwrap().simulator().config()
}

/// SPEC section 6: flat+BUY opens long, flat+SELL opens short, the opposite
/// action closes, anything else keeps the position.
fn spec_target(position: i8, action: Action) -> i8 {
    match (position, action) {
        (0, Action::Buy) => 1,
        (0, Action::Sell) => -1,
        (1, Action::Sell) | (-1, Action::Buy) => 0,
        (p, _) => p,
    }
}

/// Every decision row of `equity.parquet` explains its decision: the target position
/// follows from position and action, the bracket exists exactly when the
/// target is a position and lies on its protective and profitable sides of
/// the close, an entry's bracket is the configured ATR multiples from its
/// fill, the close is the last tick of the decision bar, and the next
/// decision of the run starts from the target (or flat, after an exit).
/// Returns the rows seen of each kind.
fn assert_decisions_auditable(
    equity: &RecordBatch,
    ticks: &[Tick],
    sim: &SimConfig,
) -> std::collections::BTreeMap<String, usize> {
    let policy = column::<StringArray>(equity, "policy");
    let ts = column::<TimestampNanosecondArray>(equity, "ts");
    let position = column::<Int8Array>(equity, "position");
    let action = column::<UInt8Array>(equity, "action");
    let mask = column::<UInt8Array>(equity, "mask");
    let kind = column::<StringArray>(equity, "kind");
    let target = column::<Int8Array>(equity, "target_position");
    let (stop, take) = (
        column::<Float64Array>(equity, "stop_price"),
        column::<Float64Array>(equity, "target_price"),
    );
    let (close, atr) = (
        column::<Float64Array>(equity, "close"),
        column::<Float64Array>(equity, "atr"),
    );
    assert_eq!(close.null_count() + atr.null_count(), 0);
    let tick = sim.instrument.spec().tick_size;
    let slippage = sim.slippage_ticks * tick;
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..equity.num_rows() {
        let ctx = format!("row {i} of {}", policy.value(i));
        *kinds.entry(kind.value(i).to_string()).or_default() += 1;
        // Every row, decision or not, is at a bar's end with its close and ATR.
        assert!(atr.value(i).is_finite() && atr.value(i) > 0.0, "{ctx}");
        let c = close.value(i);
        let last_tick = ticks.partition_point(|k| k.ts_ns < ts.value(i)) - 1;
        assert_eq!(
            c, ticks[last_tick].price,
            "{ctx}: close is the bar's last tick"
        );
        if NO_DECISION.contains(&kind.value(i)) {
            continue;
        }
        let a = Action::from_code(action.value(i)).unwrap();
        let (p, t) = (position.value(i), target.value(i));
        match kind.value(i) {
            "policy" => assert_eq!(t, spec_target(p, a), "{ctx}"),
            "session_end" | "drawdown_breached" => {
                assert_eq!((a, t), (Action::Hold, 0), "{ctx}: forced flat")
            }
            other => panic!("{ctx}: unknown kind {other:?}"),
        }
        if policy.value(i) == "buy_and_hold" {
            // No bracket; it buys at a decision while flat, else holds.
            assert!(stop.is_null(i) && take.is_null(i), "{ctx}: no bracket");
            let may_buy = mask.value(i) & (1 << Action::Buy.code()) != 0;
            let buys = kind.value(i) == "policy" && p == 0 && may_buy;
            assert_eq!(a, if buys { Action::Buy } else { Action::Hold }, "{ctx}");
            continue;
        }
        assert_eq!(
            stop.is_null(i),
            t == 0,
            "{ctx}: stop null exactly when flat"
        );
        assert_eq!(
            take.is_null(i),
            t == 0,
            "{ctx}: target null exactly when flat"
        );
        if t != 0 {
            let side = f64::from(t);
            let (s, g) = (stop.value(i), take.value(i));
            assert!((c - s) * side > 0.0, "{ctx}: stop {s} protects {t} at {c}");
            assert!((g - c) * side >= 0.0, "{ctx}: target {g} beyond {c}");
            if p == 0 {
                // An entry: whole ticks, at least the ATR multiple, from the fill.
                let fill = c + side * slippage;
                for (level, multiple) in [(s, -sim.stop_atr), (g, sim.target_atr)] {
                    let distance = (level - fill) * side / multiple.signum();
                    let wanted = multiple.abs() * atr.value(i);
                    assert!(
                        distance >= wanted - 1e-6 && distance < wanted.max(tick) + tick,
                        "{ctx}: {level} is {distance} from fill {fill}, want {wanted}"
                    );
                }
            }
        }
        if i + 1 < equity.num_rows() && policy.value(i + 1) == policy.value(i) {
            let next = position.value(i + 1);
            assert!(
                next == t || next == 0,
                "{ctx}: the next bar holds {next}, target was {t}"
            );
        }
    }
    kinds
}

/// Bars the `nq-obs-v1` features need before the first decision (SPEC
/// section 5): every run's first 131 bars are warm-up rows.
const WARMUP_ROWS: usize = 132 - 1;
const MINUTE_NS: i64 = 60_000_000_000;

/// The bar closes of minute ticks, worked out from the ticks alone: the end
/// of each minute that has a trade, but the last (the bar still open when
/// the ticks run out never closes).
fn tick_bar_ends(ticks: &[Tick]) -> Vec<i64> {
    let mut minutes: Vec<i64> = ticks
        .iter()
        .map(|t| t.ts_ns.div_euclid(MINUTE_NS))
        .collect();
    minutes.dedup();
    minutes.pop();
    minutes.into_iter().map(|m| (m + 1) * MINUTE_NS).collect()
}

/// Rows per run in a report: all of them and the decision rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RowCounts {
    rows: usize,
    decisions: usize,
}

/// `equity.parquet` has one row per bar close for every run, at the bar's
/// end (`bar_ends`, worked out from the data), strictly increasing in time;
/// each run starts with the warm-up rows. A row without a decision has no
/// decision columns; its equity is its balance plus the open position's P&L
/// at the close (equal to the balance when flat), and that balance is the
/// starting balance plus the net P&L of the run's trades closed before the
/// row (less the entry commission of a position still open). Returns the
/// row counts per run.
fn assert_one_row_per_bar(
    report: &Path,
    bar_ends: &[i64],
    sim: &SimConfig,
) -> std::collections::BTreeMap<String, RowCounts> {
    let equity = read_batch(&report.join("equity.parquet"));
    let trades = read_batch(&report.join("trades.parquet"));
    let policy = column::<StringArray>(&equity, "policy");
    let ts = column::<TimestampNanosecondArray>(&equity, "ts");
    let kind = column::<StringArray>(&equity, "kind");
    let position = column::<Int8Array>(&equity, "position");
    let (money, balance, close) = (
        column::<Float64Array>(&equity, "equity_usd"),
        column::<Float64Array>(&equity, "balance_usd"),
        column::<Float64Array>(&equity, "close"),
    );
    let decision_columns: Vec<&dyn Array> = [
        "action",
        "action_name",
        "p_hold",
        "p_buy",
        "p_sell",
        "mask",
        "target_position",
    ]
    .iter()
    .map(|c| equity.column_by_name(c).unwrap().as_ref())
    .collect();
    let bracket = [
        column::<Float64Array>(&equity, "stop_price"),
        column::<Float64Array>(&equity, "target_price"),
    ];
    let phase2 = ["p_sl_to_be", "p_trail_tighten", "p_trail_loosen"];
    let trade_policy = column::<StringArray>(&trades, "policy");
    let trade_ts = |c| column::<TimestampNanosecondArray>(&trades, c);
    let trade_f64 = |c| column::<Float64Array>(&trades, c);
    let spec = sim.instrument.spec();

    let mut runs = std::collections::BTreeMap::<String, Vec<usize>>::new();
    for i in 0..equity.num_rows() {
        runs.entry(policy.value(i).to_string()).or_default().push(i);
    }
    let mut counts = std::collections::BTreeMap::new();
    for (name, rows) in &runs {
        let times: Vec<i64> = rows.iter().map(|&i| ts.value(i)).collect();
        assert!(
            times.windows(2).all(|w| w[0] < w[1]),
            "{name}: rows strictly increasing in time"
        );
        assert_eq!(times.len(), bar_ends.len(), "{name}: one row per bar close");
        assert_eq!(times, bar_ends, "{name}: rows at the bar ends");
        let kinds: Vec<&str> = rows.iter().map(|&i| kind.value(i)).collect();
        assert!(
            kinds[..WARMUP_ROWS].iter().all(|&k| k == "warmup")
                && !kinds[WARMUP_ROWS..].contains(&"warmup"),
            "{name}: the first {WARMUP_ROWS} rows, and only they, are warm-up"
        );
        let own_trades: Vec<usize> = (0..trades.num_rows())
            .filter(|&t| trade_policy.value(t) == name)
            .collect();
        for &i in rows {
            let ctx = format!("row {i} of {name} ({})", kind.value(i));
            for p in phase2 {
                assert!(equity.column_by_name(p).unwrap().is_null(i), "{ctx}: {p}");
            }
            let decided = !NO_DECISION.contains(&kind.value(i));
            for c in &decision_columns {
                assert_eq!(c.is_valid(i), decided, "{ctx}: decision columns");
            }
            if decided {
                continue;
            }
            assert!(bracket.iter().all(|b| b.is_null(i)), "{ctx}: no bracket");
            let t = ts.value(i);
            let closed: f64 = own_trades
                .iter()
                .filter(|&&k| trade_ts("exit_time").value(k) < t)
                .map(|&k| trade_f64("pnl_usd").value(k))
                .sum();
            let open: Vec<usize> = own_trades
                .iter()
                .copied()
                .filter(|&k| {
                    trade_ts("entry_time").value(k) < t && trade_ts("exit_time").value(k) >= t
                })
                .collect();
            let side = position.value(i);
            if side == 0 {
                assert!(open.is_empty(), "{ctx}: flat, yet trade {open:?} is open");
                assert_eq!(money.value(i), balance.value(i), "{ctx}: flat equity");
                assert!(
                    (balance.value(i) - (sim.starting_balance + closed)).abs() < 1e-6,
                    "{ctx}: balance {} after {closed} closed P&L",
                    balance.value(i)
                );
            } else {
                assert_eq!(open.len(), 1, "{ctx}: one open trade");
                let entry = trade_f64("entry_price").value(open[0]);
                let open_pnl =
                    (close.value(i) - entry) * f64::from(side) / spec.tick_size * spec.tick_value;
                let cash = sim.starting_balance + closed - sim.commission_per_side;
                assert!((balance.value(i) - cash).abs() < 1e-6, "{ctx}: balance");
                assert!(
                    (money.value(i) - (balance.value(i) + open_pnl)).abs() < 1e-6,
                    "{ctx}: equity {} is balance {} + open P&L {open_pnl}",
                    money.value(i),
                    balance.value(i)
                );
            }
        }
        let decisions = kinds.iter().filter(|k| !NO_DECISION.contains(k)).count();
        counts.insert(
            name.clone(),
            RowCounts {
                rows: rows.len(),
                decisions,
            },
        );
    }
    counts
}

#[test]
fn report_agrees_with_summary_and_reruns_are_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_ticks(tmp.path());
    let report = tmp.path().join("report");
    let out = eval(&[&P1, &data, &"--report", &report]);
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("net P&L $"), "{table}");
    assert!(table.contains("flat"), "{table}");

    let trades = read_batch(&report.join("trades.parquet"));
    let summary = read_batch(&report.join("summary.parquet"));
    let equity = read_batch(&report.join("equity.parquet"));
    assert_eq!(trades.schema(), nq_formats::schema::trades());
    assert_eq!(summary.schema(), nq_formats::schema::summary());
    assert_eq!(equity.schema(), nq_formats::schema::equity());

    let names = column::<StringArray>(&summary, "policy");
    let policy_row = (0..summary.num_rows())
        .find(|&i| names.value(i) == "policy_tanh_p1")
        .expect("policy row");
    let n_trades = summary
        .column_by_name("trades")
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(policy_row);
    assert!(n_trades > 0, "the fixture policy trades on this data");
    let trade_policy = column::<StringArray>(&trades, "policy");
    let own: Vec<usize> = (0..trades.num_rows())
        .filter(|&i| trade_policy.value(i) == "policy_tanh_p1")
        .collect();
    assert_eq!(n_trades as usize, own.len());
    let pnl_sum: f64 = own
        .iter()
        .map(|&i| column::<Float64Array>(&trades, "pnl_usd").value(i))
        .sum();
    let net = column::<Float64Array>(&summary, "net_pnl_usd").value(policy_row);
    assert!((pnl_sum - net).abs() < 1e-6, "{pnl_sum} vs {net}");
    // Every trade row's net P&L is its gross less commission.
    let (g, c, p) = (
        column::<Float64Array>(&trades, "gross_pnl_usd"),
        column::<Float64Array>(&trades, "commission_usd"),
        column::<Float64Array>(&trades, "pnl_usd"),
    );
    for i in 0..trades.num_rows() {
        assert!((g.value(i) - c.value(i) - p.value(i)).abs() < 1e-9);
    }
    // One equity row per bar close of each run, and the decision rows are
    // those the summary counts actions over.
    let ticks = nq_tools::market_data::read_ticks(&data).unwrap();
    let counts = assert_one_row_per_bar(&report, &tick_bar_ends(&ticks), &checkpoint_sim(P1));
    assert_eq!(counts.len(), 4, "{counts:?}");
    let decisions: i64 = ["n_hold", "n_buy", "n_sell"]
        .iter()
        .map(|c| {
            summary
                .column_by_name(c)
                .unwrap()
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .value(policy_row)
        })
        .sum();
    let equity_policy = column::<StringArray>(&equity, "policy");
    assert_eq!(decisions as usize, counts["policy_tanh_p1"].decisions);
    let decided = decision_rows(&equity)
        .into_iter()
        .filter(|&i| equity_policy.value(i) == "policy_tanh_p1")
        .count();
    assert_eq!(decisions as usize, decided);
    assert!(
        counts["policy_tanh_p1"].rows > counts["policy_tanh_p1"].decisions,
        "{counts:?}"
    );
    // The baselines ran on the same data: flat never trades, buy and hold
    // only goes long, random trades.
    let baseline_names: Vec<&str> = (0..summary.num_rows()).map(|i| names.value(i)).collect();
    assert_eq!(
        baseline_names,
        ["policy_tanh_p1", "flat", "random", "buy_and_hold"]
    );
    let trade_policy = column::<StringArray>(&trades, "policy");
    let sides = column::<StringArray>(&trades, "side");
    let mut per_run = std::collections::BTreeMap::<&str, usize>::new();
    for i in 0..trades.num_rows() {
        *per_run.entry(trade_policy.value(i)).or_default() += 1;
        if trade_policy.value(i) == "buy_and_hold" {
            assert_eq!(sides.value(i), "LONG");
        }
    }
    assert_eq!(per_run.get("flat"), None);
    assert!(per_run["random"] > 0 && per_run["buy_and_hold"] > 0);
    let kinds = assert_decisions_auditable(&equity, &ticks, &checkpoint_sim(P1));
    assert!(kinds["policy"] > 0 && kinds["session_end"] > 0, "{kinds:?}");
    assert_eq!(kinds["warmup"], 4 * WARMUP_ROWS, "{kinds:?}");
    assert!(kinds["outside_session"] > 0, "{kinds:?}");
    // One session end per session for a run that never breaches.
    let kind = column::<StringArray>(&equity, "kind");
    let flat_ends = (0..equity.num_rows())
        .filter(|&i| equity_policy.value(i) == "flat" && kind.value(i) == "session_end")
        .count();

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["summaries"][0]["policy"], "policy_tanh_p1");
    assert!((json["summaries"][0]["net_pnl_usd"].as_f64().unwrap() - net).abs() < 1e-9);

    // The page stands alone: the table and the picture inline, nothing fetched.
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(html.contains("<td>policy_tanh_p1</td>") || html.contains("<th>policy_tanh_p1</th>"));
    assert!(html.contains("<svg") && html.contains("<polyline"));
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    let svg = std::fs::read_to_string(report.join("equity.svg")).unwrap();
    // One bar per session of daily P&L.
    let days = json["summaries"][0]["days"].as_i64().unwrap() as usize;
    assert_eq!(flat_ends, days);
    assert_eq!(
        svg.matches("<rect x=").count(),
        3 + days,
        "3 panel frames and the bars"
    );

    let again = tmp.path().join("again");
    assert!(eval(&[&P1, &data, &"--report", &again]).status.success());
    for f in REPORT_FILES {
        assert_eq!(
            std::fs::read(report.join(f)).unwrap(),
            std::fs::read(again.join(f)).unwrap(),
            "{f} differs between identical runs"
        );
    }
}

#[test]
fn several_checkpoints_are_ranked_and_json_matches() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_ticks(tmp.path());
    let out = eval(&[&P1, &P2, &data, &"--json", &"--sort-by", &"trades"]);
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = json["summaries"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert!(rows[0]["trades"].as_i64() >= rows[1]["trades"].as_i64());
    assert_eq!(json["best"], rows[0]["policy"]);
    assert_eq!(rows[2]["policy"], "flat");
    assert_eq!(rows[2]["trades"], 0);
    assert_eq!(rows[3]["policy"], "random");
    assert_eq!(rows[4]["policy"], "buy_and_hold");

    let table = eval(&[&P1, &P2, &data]);
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.contains(" *"), "best marked: {text}");

    // The report files say the same: which metric, which policy is best.
    let report = tmp.path().join("report");
    let out = eval(&[
        &P1,
        &P2,
        &data,
        &"--sort-by",
        &"trades",
        &"--report",
        &report,
    ]);
    assert!(out.status.success(), "{out:?}");
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("summary.json")).unwrap()).unwrap();
    assert_eq!(file["sort_by"], "trades");
    assert_eq!(file["best"], json["best"]);
    assert_eq!(file["summaries"], json["summaries"]);
    let flags: Vec<bool> = rows.iter().map(|r| r["best"].as_bool().unwrap()).collect();
    assert_eq!(flags, [true, false, false, false, false]);
    let summary = read_batch(&report.join("summary.parquet"));
    let (names, best) = (
        column::<StringArray>(&summary, "policy"),
        column::<arrow_array::BooleanArray>(&summary, "best"),
    );
    let marked: Vec<&str> = (0..summary.num_rows())
        .filter(|&i| best.value(i))
        .map(|i| names.value(i))
        .collect();
    assert_eq!(marked, [json["best"].as_str().unwrap()]);
}

#[test]
fn date_range_limits_the_sessions() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_ticks(tmp.path());
    let out = eval(&[&P1, &data, &"--json", &"--from", &"2024-03-05"]);
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["summaries"][0]["days"], 2);
}

/// `--from` replays the sessions before it as warm-up only (SPEC 4:
/// indicators may warm up on earlier sessions): every trade from that date
/// on is the one the whole file gives, for the policy and for buy and hold.
/// Only the account's level differs, so the default drawdown limit, measured
/// per session, changes nothing either.
#[test]
fn a_date_range_trades_its_days_as_the_whole_file_does() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, _) = real_minute_bars(tmp.path());
    let trades_of = |extra: &[&str], name: &str| {
        let report = tmp.path().join(name);
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&P1, &data, &"--report", &report];
        for a in extra {
            args.push(a);
        }
        let out = eval(&args);
        assert!(out.status.success(), "{out:?}");
        let trades = read_batch(&report.join("trades.parquet"));
        let (policy, entry, exit, pnl) = (
            column::<StringArray>(&trades, "policy"),
            column::<TimestampNanosecondArray>(&trades, "entry_time"),
            column::<TimestampNanosecondArray>(&trades, "exit_time"),
            column::<Float64Array>(&trades, "pnl_usd"),
        );
        (0..trades.num_rows())
            .filter(|&i| policy.value(i) != "random")
            .map(|i| {
                (
                    policy.value(i).to_string(),
                    entry.value(i),
                    exit.value(i),
                    pnl.value(i),
                )
            })
            .collect::<Vec<_>>()
    };
    let whole = trades_of(&[], "whole");
    let window = trades_of(&["--from", "2023-11-28"], "window");
    // 2023-11-28's CME trading day opens at 18:00 New York (23:00 UTC) the day before.
    let from_ns = 1_701_126_000_000_000_000;
    let expected: Vec<_> = whole.into_iter().filter(|t| t.1 >= from_ns).collect();
    assert!(
        expected.iter().filter(|t| t.0 == "buy_and_hold").count() == 5 && expected.len() > 20,
        "{expected:?}"
    );
    assert_eq!(window, expected);
}

fn assert_user_error(out: &Output, report: &Path, needle: &str) {
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(needle), "{err}");
    assert!(!report.exists(), "no report folder on error");
    assert!(!nq_tools::market_data::temp_path(report).exists());
}

#[test]
fn user_errors_exit_2_without_a_report() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_ticks(tmp.path());
    let report = tmp.path().join("report");

    let out = eval(&[&P1, &data, &"--instrument", &"ES", &"--report", &report]);
    assert_user_error(&out, &report, "instrument mismatch");

    let bytes = std::fs::read(P1).unwrap();
    let truncated = tmp.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let out = eval(&[&truncated, &data, &"--report", &report]);
    assert_user_error(&out, &report, "truncated.safetensors");

    let bad = tmp.path().join("bad.parquet");
    std::fs::write(&bad, b"not parquet at all").unwrap();
    let out = eval(&[&P1, &bad, &"--report", &report]);
    assert_user_error(&out, &report, "bad.parquet");

    let out = eval(&[&data, &"--report", &report]);
    assert_user_error(&out, &report, "no checkpoint");

    // A sign slip must not silently switch the limit off.
    let out = eval(&[&P1, &data, &"--drawdown-limit=-500", &"--report", &report]);
    assert_user_error(&out, &report, "--drawdown-limit -500");
}

#[test]
fn a_position_open_when_data_ends_is_closed_as_end_of_data() {
    let tmp = tempfile::tempdir().unwrap();
    let full = synth_ticks(tmp.path());
    // Cut the data at 13:00 New York on the first day, mid-session.
    let cut_ns = 1_709_575_200_000_000_000i64;
    let ticks: Vec<nq_formats::Tick> = nq_tools::market_data::read_ticks(&full)
        .unwrap()
        .into_iter()
        .filter(|t| t.ts_ns < cut_ns)
        .collect();
    let data = tmp.path().join("cut.parquet");
    let mut w = nq_tools::market_data::TickWriter::create(&data).unwrap();
    w.write(&ticks).unwrap();
    w.finish().unwrap();
    let report = tmp.path().join("report");
    // No drawdown limit, so that nothing but the data's end closes the position.
    let out = eval(&[&P1, &data, &"--drawdown-limit", &"0", &"--report", &report]);
    assert!(out.status.success(), "{out:?}");
    let trades = read_batch(&report.join("trades.parquet"));
    let (policy, reason) = (
        column::<StringArray>(&trades, "policy"),
        column::<StringArray>(&trades, "exit_reason"),
    );
    let last_hold = (0..trades.num_rows())
        .rfind(|&i| policy.value(i) == "buy_and_hold")
        .expect("buy and hold traded");
    assert_eq!(reason.value(last_hold), "END_OF_DATA");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("summary.json")).unwrap()).unwrap();
    let hold = json["summaries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["policy"] == "buy_and_hold")
        .unwrap();
    let pnl = column::<Float64Array>(&trades, "pnl_usd");
    let sum: f64 = (0..trades.num_rows())
        .filter(|&i| policy.value(i) == "buy_and_hold")
        .map(|i| pnl.value(i))
        .sum();
    assert!((hold["net_pnl_usd"].as_f64().unwrap() - sum).abs() < 1e-6);
}

#[test]
fn forced_decisions_flatten_at_session_ends_and_after_a_breach() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_ticks(tmp.path());
    let ticks = nq_tools::market_data::read_ticks(&data).unwrap();
    let sim = checkpoint_sim(P1);

    // No limit: buy and hold is long at each of the three session ends, and
    // each of them flattens it.
    let report = tmp.path().join("unlimited");
    let out = eval(&[&P1, &data, &"--drawdown-limit", &"0", &"--report", &report]);
    assert!(out.status.success(), "{out:?}");
    let equity = read_batch(&report.join("equity.parquet"));
    let kinds = assert_decisions_auditable(&equity, &ticks, &sim);
    assert_eq!(kinds.get("drawdown_breached"), None, "{kinds:?}");
    assert_one_row_per_bar(&report, &tick_bar_ends(&ticks), &sim);
    let (policy, kind) = (
        column::<StringArray>(&equity, "policy"),
        column::<StringArray>(&equity, "kind"),
    );
    let position = column::<Int8Array>(&equity, "position");
    let hold_ends: Vec<usize> = (0..equity.num_rows())
        .filter(|&i| policy.value(i) == "buy_and_hold" && kind.value(i) == "session_end")
        .collect();
    assert_eq!(hold_ends.len(), 3);
    for &i in &hold_ends {
        assert_eq!(position.value(i), 1, "row {i}");
    }
    // Each of them closed that day's one round trip.
    let trades = read_batch(&report.join("trades.parquet"));
    let (trade_policy, reason) = (
        column::<StringArray>(&trades, "policy"),
        column::<StringArray>(&trades, "exit_reason"),
    );
    let hold_exits: Vec<&str> = (0..trades.num_rows())
        .filter(|&i| trade_policy.value(i) == "buy_and_hold")
        .map(|i| reason.value(i))
        .collect();
    assert_eq!(hold_exits, ["SESSION_END"; 3]);

    // A $100 limit is soon breached: from then on every decision of that
    // session is a forced HOLD; the next session trades again (SPEC 6: a
    // breach ends the episode, and episodes are sessions).
    let report = tmp.path().join("limited");
    let out = eval(&[
        &P1,
        &data,
        &"--drawdown-limit",
        &"100",
        &"--report",
        &report,
    ]);
    assert!(out.status.success(), "{out:?}");
    let equity = read_batch(&report.join("equity.parquet"));
    let kinds = assert_decisions_auditable(&equity, &ticks, &sim);
    assert!(kinds.contains_key("drawdown_breached"), "{kinds:?}");
    assert_one_row_per_bar(&report, &tick_bar_ends(&ticks), &sim);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("summary.json")).unwrap()).unwrap();
    let (policy, kind) = (
        column::<StringArray>(&equity, "policy"),
        column::<StringArray>(&equity, "kind"),
    );
    let ts = column::<TimestampNanosecondArray>(&equity, "ts");
    let mut trading_after_a_breach = 0;
    for run in json["summaries"].as_array().unwrap() {
        let name = run["policy"].as_str().unwrap();
        let mut by_day = std::collections::BTreeMap::<chrono::NaiveDate, Vec<&str>>::new();
        for i in (0..equity.num_rows()).filter(|&i| policy.value(i) == name) {
            let (k, date) = (kind.value(i), rth_date(ts.value(i) - 1));
            if let (false, Some(date)) = (NO_DECISION.contains(&k), date) {
                by_day.entry(date).or_default().push(k);
            }
        }
        let breached: Vec<bool> = by_day
            .values()
            .map(|kinds| kinds.contains(&"drawdown_breached"))
            .collect();
        assert_eq!(
            breached.contains(&true),
            run["drawdown_breach"].as_bool().unwrap(),
            "{name}"
        );
        for (day, kinds) in &by_day {
            if let Some(first) = kinds.iter().position(|&k| k == "drawdown_breached") {
                assert!(
                    kinds[first..].iter().all(|&k| k == "drawdown_breached"),
                    "{name} {day}: a breach stops trading for the rest of the session"
                );
            }
        }
        let days: Vec<&Vec<&str>> = by_day.values().collect();
        for pair in days.windows(2) {
            if pair[0].contains(&"drawdown_breached") && pair[1].contains(&"policy") {
                trading_after_a_breach += 1;
            }
        }
    }
    assert!(
        trading_after_a_breach > 0,
        "some run trades again the session after a breach"
    );

    // `--drawdown-scope engine`: the first breach ends trading for good.
    let report = tmp.path().join("final");
    let out = eval(&[
        &P1,
        &data,
        &"--drawdown-limit",
        &"100",
        &"--drawdown-scope",
        &"engine",
        &"--report",
        &report,
    ]);
    assert!(out.status.success(), "{out:?}");
    let equity = read_batch(&report.join("equity.parquet"));
    let (policy, kind) = (
        column::<StringArray>(&equity, "policy"),
        column::<StringArray>(&equity, "kind"),
    );
    let mut breached_runs = 0;
    for name in ["policy_tanh_p1", "random"] {
        let kinds: Vec<&str> = (0..equity.num_rows())
            .filter(|&i| policy.value(i) == name)
            .map(|i| kind.value(i))
            .filter(|k| !NO_DECISION.contains(k))
            .collect();
        if let Some(first) = kinds.iter().position(|&k| k == "drawdown_breached") {
            breached_runs += 1;
            assert!(
                kinds[first..].iter().all(|&k| k == "drawdown_breached"),
                "{name}: with engine scope a breach stops trading for the rest of the data"
            );
        }
    }
    assert!(breached_runs > 0);
}

/// The report read with pyarrow, as a Python user would: once with pandas
/// beside it, once with pandas blocked, since pyarrow alone must read our
/// files (a check that leaned on pandas passed only where it happened to be
/// installed). Runs the tests' own Python (`scripts/setup-tests.sh`).
#[test]
fn pyarrow_reads_the_report_consistently() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_ticks(tmp.path());
    let report = tmp.path().join("report");
    assert!(eval(&[&P1, &P2, &data, &"--report", &report])
        .status
        .success());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/eval_reports_check.py");
    for (block_pandas, says) in [(false, "(pandas agrees)"), (true, "(pandas blocked)")] {
        let mut cmd = nq_test_support::python_command();
        cmd.arg(script).arg(&report);
        if block_pandas {
            cmd.env("NQ_CHECK_BLOCK_PANDAS", "1");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "pandas blocked: {block_pandas}: {out:?}"
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.starts_with("ok: 5 summaries"), "{stdout}");
        assert!(stdout.trim_end().ends_with(says), "{stdout}");
    }
}

#[test]
fn bars_of_another_length_than_the_checkpoints_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("report");
    // Five-minute bars through an RTH session; the fixture uses 60 s bars.
    let start = 1_709_562_600_000_000_000i64; // 2024-03-04 14:30 UTC, 09:30 New York
    let bars: Vec<nq_formats::Bar> = (0..78)
        .map(|i| {
            let p = 18_000.0 + (i % 7) as f64;
            nq_formats::Bar {
                ts_ns: start + i * 300_000_000_000,
                open: p,
                high: p + 1.0,
                low: p - 1.0,
                close: p + 0.5,
                volume: 100.0,
            }
        })
        .collect();
    let data = tmp.path().join("bars5.parquet");
    let mut w = nq_tools::market_data::BarWriter::create(&data).unwrap();
    w.write(&bars).unwrap();
    w.finish().unwrap();
    let out = eval(&[&P1, &data, &"--report", &report]);
    assert_user_error(&out, &report, "bar length mismatch");

    // The same bars one minute apart are accepted.
    let one_minute: Vec<nq_formats::Bar> = bars
        .iter()
        .enumerate()
        .map(|(i, b)| nq_formats::Bar {
            ts_ns: start + i as i64 * 60_000_000_000,
            ..*b
        })
        .collect();
    let data = tmp.path().join("bars1.parquet");
    let mut w = nq_tools::market_data::BarWriter::create(&data).unwrap();
    w.write(&one_minute).unwrap();
    w.finish().unwrap();
    let out = eval(&[&P1, &data, &"--report", &report]);
    assert!(out.status.success(), "{out:?}");
    assert!(report.join("summary.json").exists());
}

#[test]
fn quoted_checkpoint_patterns_expand() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_ticks(tmp.path());
    let pattern = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../runtime/fixtures/policy/policy_*.safetensors"
    );
    let out = eval(&[&pattern, &data, &"--json"]);
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let policies = json["summaries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "policy")
        .count();
    assert_eq!(policies, 2);

    let report = tmp.path().join("report");
    let out = eval(&[&"/nonexistent/*.safetensors", &data, &"--report", &report]);
    assert_user_error(&out, &report, "matches no file");
}

#[test]
fn a_report_folder_holding_other_files_is_refused_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_ticks(tmp.path());
    let report = tmp.path().join("report");
    std::fs::create_dir(&report).unwrap();
    std::fs::write(report.join("notes.txt"), b"mine").unwrap();
    std::fs::write(report.join("summary.json"), b"an older summary").unwrap();
    std::fs::create_dir(report.join("zz_plots")).unwrap();
    let out = eval(&[&P1, &data, &"--report", &report]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&report.display().to_string()) && err.contains("\"notes.txt\""),
        "names the folder and its first foreign entry: {err}"
    );
    assert_eq!(std::fs::read(report.join("notes.txt")).unwrap(), b"mine");
    assert_eq!(
        std::fs::read(report.join("summary.json")).unwrap(),
        b"an older summary",
        "nothing written"
    );
    assert!(report.join("zz_plots").is_dir());
    assert!(!report.join("trades.parquet").exists());
    assert!(!nq_tools::market_data::temp_path(&report).exists());

    // A path that is a file is not a report folder either.
    let file = tmp.path().join("a_file");
    std::fs::write(&file, b"x").unwrap();
    let out = eval(&[&P1, &data, &"--report", &file]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(std::fs::read(&file).unwrap(), b"x");

    // Empty, then holding only an earlier report: both are (re)written.
    let fresh = tmp.path().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    let out = eval(&[&P1, &data, &"--report", &fresh]);
    assert!(out.status.success(), "{out:?}");
    let first = std::fs::read(fresh.join("summary.json")).unwrap();
    std::fs::write(fresh.join("equity.svg"), b"stale").unwrap();
    let out = eval(&[&P1, &data, &"--report", &fresh]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(fresh.join("summary.json")).unwrap(), first);
    assert_ne!(std::fs::read(fresh.join("equity.svg")).unwrap(), b"stale");
}

#[test]
fn a_closed_stdout_ends_quietly_after_the_report_is_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_ticks(tmp.path());
    let expected = tmp.path().join("expected");
    assert!(eval(&[&P1, &data, &"--report", &expected]).status.success());
    for flags in [&[][..], &["--json"][..]] {
        let report = tmp.path().join(format!("piped{}", flags.len()));
        let out = run_with_closed_stdout(
            Command::new(NQ_EVAL)
                .args(["--null-seeds", "4"])
                .arg(P1)
                .arg(&data)
                .arg("--report")
                .arg(&report)
                .args(flags),
            None,
        );
        assert_quiet_success(&out, &format!("nq-eval {flags:?} | head"));
        for f in REPORT_FILES {
            assert_eq!(
                std::fs::read(report.join(f)).unwrap(),
                std::fs::read(expected.join(f)).unwrap(),
                "{f}: the report is complete though nobody read stdout"
            );
        }
    }

    // nq-data's commands print after their work: `inspect` prints only.
    let out = run_with_closed_stdout(Command::new(NQ_DATA).arg("inspect").arg(&data), None);
    assert_quiet_success(&out, "nq-data inspect | head");
    let out = run_with_closed_stdout(
        Command::new(NQ_DATA).args(["inspect", "--json", P1, P2]),
        None,
    );
    assert_quiet_success(&out, "nq-data inspect checkpoints | head");
    let split = (
        tmp.path().join("train.parquet"),
        tmp.path().join("test.parquet"),
    );
    let out = run_with_closed_stdout(
        Command::new(NQ_DATA)
            .arg("split")
            .arg(&data)
            .args(["--test-days", "1", "--train"])
            .arg(&split.0)
            .arg("--test")
            .arg(&split.1),
        None,
    );
    assert_quiet_success(&out, "nq-data split | head");
    assert!(split.0.exists() && split.1.exists());
}

/// The RTH session (09:30-16:00 New York) of `ts_ns`: its date, or `None`.
/// Worked out with chrono-tz here, not with the code under test.
fn rth_date(ts_ns: i64) -> Option<chrono::NaiveDate> {
    use chrono::{TimeZone, Timelike};
    let local = chrono_tz::America::New_York.timestamp_nanos(ts_ns);
    let minute = local.hour() * 60 + local.minute();
    (570..960).contains(&minute).then(|| local.date_naive())
}

/// A buy-and-hold trade's entry and exit: each time (ns) and market price.
type OpenAndClose = ((i64, f64), (i64, f64));

/// The New York minute of day of `ts_ns` (chrono-tz, not the code under test).
fn ny_minute(ts_ns: i64) -> u32 {
    use chrono::{TimeZone, Timelike};
    let local = chrono_tz::America::New_York.timestamp_nanos(ts_ns);
    local.hour() * 60 + local.minute()
}

/// Buy and hold over minute bars, per RTH session: the decision at the
/// close of the 09:30 bar fills at the next bar's open; the session's last
/// bar (15:59) closes it at its close, at 16:00.
fn rth_bar_trades(bars: &[nq_formats::Bar]) -> Vec<OpenAndClose> {
    let mut days = std::collections::BTreeMap::<chrono::NaiveDate, OpenAndClose>::new();
    for (i, b) in bars.iter().enumerate() {
        let Some(date) = rth_date(b.ts_ns) else {
            continue;
        };
        let entry = bars.get(i + 1).map(|n| (n.ts_ns, n.open));
        let exit = (b.ts_ns + MINUTE_NS, b.close);
        days.entry(date)
            .and_modify(|(_, last)| *last = exit)
            .or_insert_with(|| (entry.unwrap(), exit));
    }
    days.into_values().collect()
}

/// Buy and hold over ticks, per RTH session: the first print at or after
/// 09:31 closes the 09:30 bar, whose decision fills on it; the first print
/// at or after 16:00 closes the session's last bar and fills the flatten.
fn rth_tick_trades(ticks: &[Tick]) -> Vec<OpenAndClose> {
    let mut trades = Vec::new();
    let mut entry = None;
    for t in ticks {
        let minute = ny_minute(t.ts_ns);
        if entry.is_none() && (571..960).contains(&minute) {
            entry = Some((t.ts_ns, t.price));
        } else if minute >= 960 {
            if let Some(e) = entry.take() {
                trades.push((e, (t.ts_ns, t.price)));
            }
        }
    }
    trades
}

/// The buy-and-hold trades of a report: one per RTH session, long from the
/// session's first decision to its end, with no bracket (SESSION_END, never
/// STOP or TARGET), slippage both ways, a commission each side, and P&L
/// worked out here from those prices.
fn assert_buy_and_hold_rth(report: &Path, sessions: &[OpenAndClose], sim: &SimConfig) {
    let trades = read_batch(&report.join("trades.parquet"));
    let policy = column::<StringArray>(&trades, "policy");
    let rows: Vec<usize> = (0..trades.num_rows())
        .filter(|&i| policy.value(i) == "buy_and_hold")
        .collect();
    assert_eq!(rows.len(), sessions.len(), "one round trip per RTH session");
    let spec = sim.instrument.spec();
    let slip = sim.slippage_ticks * spec.tick_size;
    let ts = |c| column::<TimestampNanosecondArray>(&trades, c);
    let f = |c| column::<Float64Array>(&trades, c);
    for (&i, &((t0, open), (t1, close))) in rows.iter().zip(sessions) {
        let ctx = format!("trade row {i}");
        assert_eq!(column::<StringArray>(&trades, "side").value(i), "LONG");
        assert_eq!(
            column::<StringArray>(&trades, "exit_reason").value(i),
            "SESSION_END",
            "{ctx}"
        );
        assert_eq!(ts("entry_time").value(i), t0, "{ctx}: enters after 09:30");
        assert_eq!(
            ts("exit_time").value(i),
            t1,
            "{ctx}: leaves at the RTH close"
        );
        let (entry, exit) = (open + slip, close - slip);
        assert_eq!(f("entry_price").value(i), entry, "{ctx}");
        assert_eq!(f("exit_price").value(i), exit, "{ctx}");
        let commission = 2.0 * sim.commission_per_side;
        let gross = (exit - entry) / spec.tick_size * spec.tick_value;
        assert!(
            (f("commission_usd").value(i) - commission).abs() < 1e-9,
            "{ctx}"
        );
        assert!((f("gross_pnl_usd").value(i) - gross).abs() < 1e-6, "{ctx}");
        assert!(
            (f("pnl_usd").value(i) - (gross - commission)).abs() < 1e-6,
            "{ctx}"
        );
    }
}

/// Real NQ minute bars, Globex hours included (2023-11-19 .. 12-04), imported
/// by nq-data into `dir`: the file and its bars.
fn real_minute_bars(dir: &Path) -> (PathBuf, Vec<nq_formats::Bar>) {
    let csv = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/real/nq_firstrate_2023_11/nq_1min_bars_utc.csv"
    );
    let data = dir.join("bars.parquet");
    let import = Command::new(NQ_DATA)
        .args(["import", csv, "-o"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(import.status.success(), "{import:?}");
    let bars = nq_tools::market_data::read_bars(&data).unwrap();
    (data, bars)
}

#[test]
fn buy_and_hold_is_long_each_rth_session_from_its_first_decision_to_its_end_without_a_bracket() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = checkpoint_sim(P1);

    // The entry is the 09:31 bar's open (the fill of the decision at the
    // 09:30 bar's close), the exit the 15:59 bar's close at 16:00, whatever
    // session the checkpoint trades.
    let (data, bars) = real_minute_bars(tmp.path());
    let sessions = rth_bar_trades(&bars);
    assert!(sessions.len() >= 10, "{} sessions", sessions.len());
    for session in ["RTH", "globex"] {
        let report = tmp.path().join(format!("report_{session}"));
        let out = eval(&[
            &P1,
            &data,
            &"--session",
            &session,
            &"--drawdown-limit",
            &"0",
            &"--report",
            &report,
        ]);
        assert!(out.status.success(), "{out:?}");
        assert_buy_and_hold_rth(&report, &sessions, &sim);
    }

    // Ticks: from the first print after the 09:30 bar to the first at 16:00.
    let data = synth_ticks(tmp.path());
    let ticks = nq_tools::market_data::read_ticks(&data).unwrap();
    let sessions = rth_tick_trades(&ticks);
    assert_eq!(sessions.len(), 3);
    let report = tmp.path().join("ticks_report");
    let out = eval(&[&P1, &data, &"--drawdown-limit", &"0", &"--report", &report]);
    assert!(out.status.success(), "{out:?}");
    assert_buy_and_hold_rth(&report, &sessions, &sim);
}

#[test]
fn every_bar_of_real_minute_bars_has_a_row_in_every_run() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = checkpoint_sim(P1);
    let (data, bars) = real_minute_bars(tmp.path());
    let bar_ends: Vec<i64> = bars.iter().map(|b| b.ts_ns + MINUTE_NS).collect();
    let report = tmp.path().join("report");
    let out = eval(&[&P1, &data, &"--report", &report]);
    assert!(out.status.success(), "{out:?}");
    let counts = assert_one_row_per_bar(&report, &bar_ends, &sim);
    assert_eq!(counts.len(), 4, "{counts:?}");
    eprintln!("{} bars: {counts:?}", bars.len());
    for (name, c) in &counts {
        assert!(c.decisions > 0 && c.decisions < c.rows, "{name}: {c:?}");
    }

    // From an RTH open on: buy and hold decides as the policy does, so it is
    // flat through the warm-up and long from its first RTH decision on.
    let open = bars
        .iter()
        .position(|b| rth_date(b.ts_ns).is_some() && rth_date(b.ts_ns - MINUTE_NS).is_none())
        .expect("an RTH open");
    let from_open = &bars[open..open + 400];
    let data = tmp.path().join("from_open.parquet");
    let mut w = nq_tools::market_data::BarWriter::create(&data).unwrap();
    w.write(from_open).unwrap();
    w.finish().unwrap();
    let report = tmp.path().join("from_open");
    let out = eval(&[&P1, &data, &"--drawdown-limit", &"0", &"--report", &report]);
    assert!(out.status.success(), "{out:?}");
    let bar_ends: Vec<i64> = from_open.iter().map(|b| b.ts_ns + MINUTE_NS).collect();
    assert_one_row_per_bar(&report, &bar_ends, &sim);
    let equity = read_batch(&report.join("equity.parquet"));
    let (policy, kind, position) = (
        column::<StringArray>(&equity, "policy"),
        column::<StringArray>(&equity, "kind"),
        column::<Int8Array>(&equity, "position"),
    );
    let rows: Vec<usize> = (0..equity.num_rows())
        .filter(|&i| policy.value(i) == "buy_and_hold")
        .collect();
    let warmup = rows.iter().filter(|&&i| kind.value(i) == "warmup").count();
    assert_eq!(warmup, WARMUP_ROWS);
    assert!(rows[..warmup].iter().all(|&i| position.value(i) == 0));
    let first_decision = rows[warmup];
    assert_eq!(kind.value(first_decision), "policy");
    assert_eq!(
        column::<UInt8Array>(&equity, "action").value(first_decision),
        Action::Buy.code()
    );
    assert_eq!(position.value(rows[warmup + 1]), 1, "long from then on");
}

/// The CME trading date of `ts_ns` (New York date; from 18:00 the next
/// day's), worked out with chrono-tz here.
fn cme_trading_date(ts_ns: i64) -> chrono::NaiveDate {
    use chrono::{TimeZone, Timelike};
    let local = chrono_tz::America::New_York.timestamp_nanos(ts_ns);
    let date = local.date_naive();
    if local.hour() >= 18 {
        date.succ_opt().unwrap()
    } else {
        date
    }
}

/// What a user checks first in pandas: each day's last `equity.parquet` row
/// agrees with `trades.parquet`. Nothing is held overnight, so at the last
/// row of every trading date the account is flat and its equity is the
/// starting balance plus the P&L of every trade closed by then. Returns the
/// days checked per run.
fn assert_days_reconcile(report: &Path, sim: &SimConfig, what: &str) -> usize {
    let equity = read_batch(&report.join("equity.parquet"));
    let trades = read_batch(&report.join("trades.parquet"));
    let (policy, ts, money) = (
        column::<StringArray>(&equity, "policy"),
        column::<TimestampNanosecondArray>(&equity, "ts"),
        column::<Float64Array>(&equity, "equity_usd"),
    );
    let trade_policy = column::<StringArray>(&trades, "policy");
    let (entry, exit, pnl) = (
        column::<TimestampNanosecondArray>(&trades, "entry_time"),
        column::<TimestampNanosecondArray>(&trades, "exit_time"),
        column::<Float64Array>(&trades, "pnl_usd"),
    );
    // The last row of each (run, trading date).
    let mut last_rows = std::collections::BTreeMap::<(String, chrono::NaiveDate), usize>::new();
    for i in 0..equity.num_rows() {
        last_rows.insert(
            (policy.value(i).to_string(), cme_trading_date(ts.value(i))),
            i,
        );
    }
    let reason = column::<StringArray>(&trades, "exit_reason");
    let final_day = last_rows.keys().map(|(_, day)| *day).max();
    let mut days = std::collections::BTreeMap::<String, usize>::new();
    for ((name, day), i) in &last_rows {
        let t = ts.value(*i);
        let own = || (0..trades.num_rows()).filter(|&k| trade_policy.value(k) == name);
        // With ticks the last bar has no close, so a position still open at
        // the data's end closes after the last row.
        if Some(*day) == final_day && own().any(|k| reason.value(k) == "END_OF_DATA") {
            continue;
        }
        let open: Vec<usize> = own()
            .filter(|&k| entry.value(k) < t && exit.value(k) > t)
            .collect();
        assert!(
            open.is_empty(),
            "{what}: {name} holds trade {open:?} over the end of {day}"
        );
        let closed: f64 = own()
            .filter(|&k| exit.value(k) <= t)
            .map(|k| pnl.value(k))
            .sum();
        assert!(
            (money.value(*i) - (sim.starting_balance + closed)).abs() < 1e-6,
            "{what}: {name} on {day}: the day's last row (row {i}) has equity {}, the trades \
             closed by then {closed:+}",
            money.value(*i),
        );
        *days.entry(name.clone()).or_default() += 1;
    }
    assert_eq!(days.len(), 4, "{what}: {days:?}");
    days.into_values().min().unwrap()
}

/// Ticks made from bars: the open, high, low and close of each bar, 15 s apart.
fn ticks_of_bars(bars: &[nq_formats::Bar]) -> Vec<Tick> {
    bars.iter()
        .flat_map(|b| {
            [b.open, b.high, b.low, b.close]
                .into_iter()
                .enumerate()
                .map(move |(i, price)| Tick {
                    ts_ns: b.ts_ns + i as i64 * 15_000_000_000,
                    price,
                    size: 1.0,
                    side: nq_formats::Side::None,
                })
        })
        .collect()
}

#[test]
fn each_days_last_equity_row_agrees_with_the_trades_closed_by_then() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = checkpoint_sim(P1);
    let (globex_bars, bars) = real_minute_bars(tmp.path());
    // RTH-only data, as many vendors sell it: no print after 16:00, and on
    // the early-close days (Nov 23 and 24) none after 13:00 and 13:15.
    let rth: Vec<nq_formats::Bar> = bars
        .iter()
        .copied()
        .filter(|b| rth_date(b.ts_ns).is_some())
        .collect();
    let rth_bars = tmp.path().join("rth_bars.parquet");
    let mut w = nq_tools::market_data::BarWriter::create(&rth_bars).unwrap();
    w.write(&rth).unwrap();
    w.finish().unwrap();
    let mut tick_files = Vec::new();
    for (name, bars) in [("globex_ticks", &bars), ("rth_ticks", &rth)] {
        let path = tmp.path().join(format!("{name}.parquet"));
        let mut w = nq_tools::market_data::TickWriter::create(&path).unwrap();
        w.write(&ticks_of_bars(bars)).unwrap();
        w.finish().unwrap();
        tick_files.push(path);
    }
    let data = [
        globex_bars,
        rth_bars,
        tick_files.remove(0),
        tick_files.remove(0),
    ];
    for data in &data {
        for limit in ["0", "2500"] {
            let what = format!("{} --drawdown-limit {limit}", data.display());
            let report = tmp.path().join("report");
            let out = eval(&[&P1, data, &"--drawdown-limit", &limit, &"--report", &report]);
            assert!(out.status.success(), "{what}: {out:?}");
            let days = assert_days_reconcile(&report, &sim, &what);
            assert!(days >= 10, "{what}: {days} days");
        }
    }
}
