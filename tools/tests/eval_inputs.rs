//! What `nq-eval` (and the reader under it) makes of awkward inputs: bars
//! repeated within or across files, bar files of different lengths side by
//! side, days the policy spends warming up while a baseline trades, runs
//! whose labels would collide, and bad simulator flags. End to end through
//! the real binaries where the user meets the behaviour.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow_array::{Float64Array, StringArray, TimestampNanosecondArray};
use chrono::{NaiveDate, TimeZone, Timelike};
use chrono_tz::America::New_York;
use nq_formats::{Bar, Side, Tick};
use nq_tools::market_data::{BarWriter, MarketReader, TickWriter};

#[path = "support/report.rs"]
mod report;
use report::{column, read_batch};

const NQ_EVAL: &str = env!("CARGO_BIN_EXE_nq-eval");
const NQ_DATA: &str = env!("CARGO_BIN_EXE_nq-data");
/// A 60 s, 09:30-16:00 checkpoint.
const P1: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../runtime/fixtures/policy/policy_tanh_p1.safetensors"
);
const NQ_1MIN_CSV: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/real/nq_firstrate_2023_11/nq_1min_bars_utc.csv"
);
const NQ_5MIN_CSV: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/real/nq_databento_5min_2023_01/nq_5min_bars_utc.csv"
);

fn run(bin: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new(bin);
    for a in args {
        cmd.arg(a);
    }
    cmd.output().expect("the binary runs")
}

/// nq-eval with a small random-action null (the default 100 replays would
/// make every test slow; the null is tested on its own).
fn eval(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = args.to_vec();
    all.extend([&"--null-seeds" as &dyn AsRef<std::ffi::OsStr>, &"4"]);
    run(NQ_EVAL, &all)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit 2, every `needle` in the message, and no report folder left.
fn assert_user_error(out: &Output, report: &Path, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(out);
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
    assert!(!report.exists(), "no report folder on error");
    assert!(!nq_tools::market_data::temp_path(report).exists());
}

/// Real bars from one of the `../shared` CSVs, imported by nq-data into `dir`.
fn real_bars(dir: &Path, csv: &str) -> Vec<Bar> {
    let data = dir.join("imported.parquet");
    let import = run(NQ_DATA, &[&"import", &csv, &"-o", &data]);
    assert!(import.status.success(), "{import:?}");
    let bars = nq_tools::market_data::read_bars(&data).unwrap();
    std::fs::remove_file(&data).unwrap();
    bars
}

fn write_bars(path: &Path, bars: &[Bar]) -> PathBuf {
    let mut w = BarWriter::create(path).unwrap();
    w.write(bars).unwrap();
    w.finish().unwrap();
    path.to_path_buf()
}

// ---------- A: repeated bars ----------

#[test]
fn a_bar_repeated_within_a_file_is_refused_naming_file_and_row() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bars = real_bars(tmp.path(), NQ_1MIN_CSV)[..300].to_vec();
    bars.insert(201, bars[200]);
    let data = write_bars(&tmp.path().join("repeated.parquet"), &bars);
    let needles = [
        "repeated.parquet",
        "row 201",
        "column `ts`",
        "duplicate bar",
    ];

    // Whether the repeat falls inside a batch or starts the next one.
    for batch_rows in [1024, 201, 200] {
        let err = MarketReader::open(&data)
            .unwrap()
            .with_batch_size(batch_rows)
            .read_all_bars()
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        for needle in needles {
            assert!(err.to_string().contains(needle), "{batch_rows}: {err}");
        }
    }

    let report = tmp.path().join("report");
    let out = eval(&[&P1, &data, &"--report", &report]);
    assert_user_error(&out, &report, &needles);
    assert!(!stderr(&out).contains("bar length mismatch"));
}

#[test]
fn a_file_starting_with_the_previous_files_last_bar_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let bars = real_bars(tmp.path(), NQ_1MIN_CSV);
    let first = write_bars(&tmp.path().join("first.parquet"), &bars[..200]);
    let second = write_bars(&tmp.path().join("second.parquet"), &bars[199..400]);
    let report = tmp.path().join("report");
    let out = eval(&[&P1, &first, &second, &"--report", &report]);
    assert_user_error(
        &out,
        &report,
        &["second.parquet", "row 0", "files overlap", "first.parquet"],
    );
    // Back to back without the repeat is one stream.
    let second = write_bars(&tmp.path().join("second.parquet"), &bars[200..400]);
    let out = eval(&[&P1, &first, &second, &"--report", &report]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn ticks_may_share_a_time_within_and_across_files() {
    let tmp = tempfile::tempdir().unwrap();
    let t0 = 1_700_485_200_000_000_000i64; // 2023-11-20 13:00 UTC
    let tick = |ts_ns, price| Tick {
        ts_ns,
        price,
        size: 1.0,
        side: Side::Buy,
    };
    let write = |name: &str, ticks: &[Tick]| {
        let path = tmp.path().join(name);
        let mut w = TickWriter::create(&path).unwrap();
        w.write(ticks).unwrap();
        w.finish().unwrap();
        path
    };
    let a = write(
        "a.parquet",
        &[tick(t0, 100.0), tick(t0, 100.25), tick(t0 + 5, 100.5)],
    );
    let b = write("b.parquet", &[tick(t0 + 5, 100.5), tick(t0 + 9, 100.0)]);
    let ticks = MarketReader::open_many(&[&a, &b])
        .unwrap()
        .with_batch_size(2)
        .read_all_ticks()
        .unwrap();
    let times: Vec<i64> = ticks.iter().map(|t| t.ts_ns - t0).collect();
    assert_eq!(times, [0, 0, 5, 5, 9]);
}

#[test]
fn nq_data_import_refuses_a_repeated_bar_line_like_an_unsorted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(NQ_1MIN_CSV).unwrap();
    let mut lines: Vec<&str> = text.lines().take(50).collect();
    lines.insert(21, lines[20]); // line 22 repeats line 21 (header is line 1)
    let csv = tmp.path().join("repeated.csv");
    std::fs::write(&csv, lines.join("\n") + "\n").unwrap();
    let out_file = tmp.path().join("out.parquet");

    let out = run(NQ_DATA, &[&"import", &csv, &"-o", &out_file]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("repeated.csv") && err.contains("line 22") && err.contains("duplicate bar"),
        "{err}"
    );
    assert!(!out_file.exists());

    // --skip-bad drops it as it drops a line going back in time.
    let out = run(NQ_DATA, &[&"import", &csv, &"-o", &out_file, &"--skip-bad"]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("skipped 1 bad lines"), "{said}");
    assert_eq!(
        nq_tools::market_data::read_bars(&out_file).unwrap().len(),
        49
    );
}

// ---------- B: bar files of different lengths ----------

#[test]
fn each_bar_file_must_have_the_checkpoints_bar_length() {
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("report");
    // January 2023 five-minute bars, November 2023 one-minute bars.
    let five = write_bars(
        &tmp.path().join("five_min.parquet"),
        &real_bars(tmp.path(), NQ_5MIN_CSV)[..300],
    );
    let minute_bars = real_bars(tmp.path(), NQ_1MIN_CSV);
    let one = write_bars(&tmp.path().join("one_min.parquet"), &minute_bars[..300]);

    // The five-minute file is named, whichever order the files are given in.
    for (a, b) in [(&five, &one), (&one, &five)] {
        let out = eval(&[&P1, a, b, &"--report", &report]);
        assert_user_error(
            &out,
            &report,
            &[
                "five_min.parquet",
                "bar length mismatch",
                "300 s apart",
                "60 s bars",
            ],
        );
        assert!(!stderr(&out).contains("one_min.parquet"), "{out:?}");
    }

    // A file of a single bar cannot be judged; beside the right bars it is
    // accepted, whatever the gap to them.
    let single = write_bars(&tmp.path().join("single.parquet"), &minute_bars[1000..1001]);
    let out = eval(&[&P1, &one, &single, &"--report", &report]);
    assert!(out.status.success(), "{out:?}");
}

// ---------- C: days ----------

/// `P1` rewritten for `bar_seconds` bars: both bar lengths of its metadata
/// and the layout hash that goes with them.
fn checkpoint_with_bar_seconds(path: &Path, bar_seconds: u32) -> PathBuf {
    let bytes = std::fs::read(P1).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let meta = header["__metadata__"].as_object_mut().unwrap();
    for key in ["bar_seconds", "sim.bar_seconds"] {
        meta.insert(key.into(), bar_seconds.to_string().into());
    }
    let hash = nq_formats::OBS_LAYOUT_V1
        .with_bar_seconds(bar_seconds)
        .hash_hex();
    meta.insert("obs_layout_hash".into(), hash.to_string().into());
    let mut text = serde_json::to_vec(&header).unwrap();
    // The tensors stay 8-byte aligned after the header.
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(path, out).unwrap();
    path.to_path_buf()
}

/// The New York date of an instant inside RTH (09:30-16:00), else `None`.
fn rth_date(ts_ns: i64) -> Option<NaiveDate> {
    let local = New_York.timestamp_nanos(ts_ns);
    let minute = local.hour() * 60 + local.minute();
    (9 * 60 + 30..16 * 60)
        .contains(&minute)
        .then(|| local.date_naive())
}

/// Five-minute bars of RTH only: 78 a day, fewer than the 132 bars the
/// features need, so nothing decides on the first day (buy and hold
/// included: it decides through the same engine). The day still counts, as
/// a day of zero P&L.
#[test]
fn a_day_the_policy_spends_warming_up_is_still_a_day() {
    let tmp = tempfile::tempdir().unwrap();
    let mut by_day: BTreeMap<NaiveDate, Vec<Bar>> = BTreeMap::new();
    for bar in real_bars(tmp.path(), NQ_5MIN_CSV) {
        if let Some(day) = rth_date(bar.ts_ns) {
            by_day.entry(day).or_default().push(bar);
        }
    }
    let days: Vec<NaiveDate> = by_day.keys().copied().take(5).collect();
    let bars: Vec<Bar> = days.iter().flat_map(|d| by_day[d].clone()).collect();
    assert!(by_day[&days[0]].len() < 132, "{}", by_day[&days[0]].len());
    let data = write_bars(&tmp.path().join("rth5.parquet"), &bars);
    let ckpt = checkpoint_with_bar_seconds(&tmp.path().join("five.safetensors"), 300);
    let report = tmp.path().join("report");
    let out = eval(&[
        &ckpt,
        &data,
        &"--drawdown-limit",
        &"0",
        &"--json",
        &"--report",
        &report,
    ]);
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let summaries = json["summaries"].as_array().unwrap();
    assert_eq!(summaries.len(), 4);
    for s in summaries {
        assert_eq!(s["days"], 5, "{}: every day with bars", s["policy"]);
    }

    // Buy-and-hold's daily P&L is the equity at each day's last bar row
    // less the day before's: nothing on the warm-up day, then its first
    // round trip on the second day.
    let equity = read_batch(&report.join("equity.parquet"));
    let policy = column::<StringArray>(&equity, "policy");
    let ts = column::<TimestampNanosecondArray>(&equity, "ts");
    let value = column::<Float64Array>(&equity, "equity_usd");
    let mut last: BTreeMap<NaiveDate, f64> = BTreeMap::new();
    for i in (0..equity.num_rows()).filter(|&i| policy.value(i) == "buy_and_hold") {
        let day = New_York.timestamp_nanos(ts.value(i) - 1).date_naive();
        last.insert(day, value.value(i));
    }
    assert_eq!(last.keys().copied().collect::<Vec<_>>(), days);
    let mut previous = 50_000.0;
    let daily: Vec<f64> = last
        .into_values()
        .map(|close| {
            let pnl = close - previous;
            previous = close;
            pnl
        })
        .collect();
    let trades = read_batch(&report.join("trades.parquet"));
    let trade_policy = column::<StringArray>(&trades, "policy");
    let first = (0..trades.num_rows())
        .find(|&i| trade_policy.value(i) == "buy_and_hold")
        .unwrap();
    let first_trade = column::<Float64Array>(&trades, "pnl_usd").value(first);
    assert!(first_trade.abs() > 100.0, "{first_trade}");
    assert_eq!(daily[0], 0.0, "{daily:?}");
    assert!(
        (daily[1] - first_trade).abs() <= 20.0,
        "{daily:?} {first_trade}"
    );
    let mean = daily.iter().sum::<f64>() / 5.0;
    let var = daily.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 4.0;
    let sharpe = mean / var.sqrt() * 252f64.sqrt();
    let buy_and_hold = summaries
        .iter()
        .find(|s| s["policy"] == "buy_and_hold")
        .unwrap();
    let reported = buy_and_hold["sharpe_daily"].as_f64().unwrap();
    assert!(
        (reported - sharpe).abs() < 1e-9 * sharpe.abs().max(1.0),
        "{reported} vs {sharpe}"
    );
}

// ---------- D: labels ----------

#[test]
fn checkpoints_that_would_share_a_label_stay_apart_in_the_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let data = write_bars(
        &tmp.path().join("bars.parquet"),
        &real_bars(tmp.path(), NQ_1MIN_CSV),
    );
    let mut copies = Vec::new();
    for folder in ["x/a", "y/a"] {
        let dir = tmp.path().join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("final.safetensors");
        std::fs::copy(P1, &path).unwrap();
        copies.push(path);
    }
    let report = tmp.path().join("report");
    // Two folders called `a`, and the first checkpoint a second time.
    let out = eval(&[
        &copies[0],
        &copies[1],
        &copies[0],
        &data,
        &"--json",
        &"--report",
        &report,
    ]);
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = json["summaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["policy"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "buy_and_hold",
            "flat",
            "random",
            "x/a/final",
            "x/a/final#2",
            "y/a/final"
        ]
    );

    // Each run's trades under its own name: as many as its summary counts.
    let trades = read_batch(&report.join("trades.parquet"));
    let policy = column::<StringArray>(&trades, "policy");
    let mut counted: BTreeMap<&str, i64> = BTreeMap::new();
    for i in 0..trades.num_rows() {
        *counted.entry(policy.value(i)).or_default() += 1;
    }
    for s in json["summaries"].as_array().unwrap() {
        let name = s["policy"].as_str().unwrap();
        let expected = s["trades"].as_i64().unwrap();
        assert_eq!(counted.get(name).copied().unwrap_or(0), expected, "{name}");
    }
    assert!(counted["x/a/final#2"] > 0);

    // The table has one column per run, under the same names.
    let out = eval(&[&copies[0], &copies[1], &copies[0], &data]);
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8(out.stdout).unwrap();
    // The best policy's column is marked ` *`.
    let mut columns: Vec<&str> = table
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .filter(|h| *h != "*")
        .collect();
    columns.sort_unstable();
    assert_eq!(columns, sorted, "{table}");
}

// ---------- E: simulator flags ----------

#[test]
fn bad_commission_and_slippage_flags_are_named_and_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = write_bars(
        &tmp.path().join("bars.parquet"),
        &real_bars(tmp.path(), NQ_1MIN_CSV),
    );
    let report = tmp.path().join("report");
    for (flag, value, says) in [
        (
            "--commission",
            "nan",
            "--commission NaN: must be a finite number",
        ),
        (
            "--commission",
            "inf",
            "--commission inf: must be a finite number",
        ),
        ("--commission", "1e308", "must be at most 1000"),
        ("--commission", "-1", "--commission -1: must be >= 0"),
        ("--slippage-ticks", "0.5", "slippage is in whole ticks"),
        (
            "--slippage-ticks",
            "-1",
            "--slippage-ticks -1: must be >= 0",
        ),
        (
            "--slippage-ticks",
            "nan",
            "--slippage-ticks NaN: must be a finite",
        ),
        ("--slippage-ticks", "5000", "must be at most 1000 ticks"),
        (
            "--drawdown-limit",
            "-500",
            "--drawdown-limit -500: must be a number >= 0",
        ),
    ] {
        let out = eval(&[&P1, &data, &flag, &value, &"--report", &report]);
        assert_user_error(&out, &report, &[says]);
        // The flag is at fault, not the checkpoint it overrides.
        assert!(!stderr(&out).contains("safetensors"), "{out:?}");
    }

    // What is accepted is what is simulated: no commission, two whole ticks.
    let out = eval(&[
        &P1,
        &data,
        &"--commission",
        &"0",
        &"--slippage-ticks",
        &"2",
        &"--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let policy = &json["summaries"][0];
    assert!(policy["trades"].as_i64().unwrap() > 0, "{policy}");
    assert_eq!(policy["commission_usd"], 0.0);
}
