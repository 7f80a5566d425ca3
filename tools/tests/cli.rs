//! End-to-end: the real `nq-data` binary on the real CSVs under
//! ../shared/data/real and on bad inputs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nq_formats::{Bar, Tick};
use nq_tools::market_data::{read_bars, read_ticks, DataKind, MarketReader, TickWriter};

const REAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/real");

fn real(rel: &str) -> PathBuf {
    Path::new(REAL).join(rel)
}

fn nq_data(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nq-data"))
        .args(args)
        .output()
        .expect("run nq-data")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the CSV says, read with nothing but `str::split` and `parse`.
struct CsvFacts {
    rows: usize,
    first_ts: i64,
    last_ts: i64,
    /// Sum of the price column (ticks) or of each of open, high, low, close (bars).
    price_sums: Vec<f64>,
}

fn csv_facts(path: &Path) -> CsvFacts {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let price_cols: Vec<usize> = if header.contains("open") {
        vec![1, 2, 3, 4]
    } else {
        vec![1]
    };
    let mut facts = CsvFacts {
        rows: 0,
        first_ts: 0,
        last_ts: 0,
        price_sums: vec![0.0; price_cols.len()],
    };
    for line in lines.filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let ts: i64 = f[0].parse().unwrap();
        if facts.rows == 0 {
            facts.first_ts = ts;
        }
        facts.last_ts = ts;
        facts.rows += 1;
        for (k, &c) in price_cols.iter().enumerate() {
            facts.price_sums[k] += f[c].parse::<f64>().unwrap();
        }
    }
    facts
}

const REAL_CSVS: [&str; 7] = [
    "es_firstrate_2023_03/es_1min_bars_utc.csv",
    "es_firstrate_2023_03/es_5min_bars_utc.csv",
    "es_mlfinlab_ticks_2011_07_31/es_ticks_utc.csv",
    "nq_databento_5min_2023_01/nq_5min_bars_utc.csv",
    "nq_databento_trades_2025_05_04/nqm5_trades_utc.csv",
    "nq_firstrate_2023_11/nq_1min_bars_utc.csv",
    "nq_firstrate_2023_11/nq_5min_bars_utc.csv",
];

#[test]
fn import_of_every_real_csv_keeps_rows_span_and_price_sum() {
    let dir = tempfile::tempdir().unwrap();
    for rel in REAL_CSVS {
        let input = real(rel);
        let output = dir.path().join(rel.replace('/', "_") + ".parquet");
        assert_ok(&nq_data(&["import", s(&input), "-o", s(&output)]));
        let facts = csv_facts(&input);
        let reader = MarketReader::open(&output).unwrap();
        let (ts, sums): (Vec<i64>, Vec<f64>) = match reader.kind() {
            DataKind::Ticks => {
                let t = reader.read_all_ticks().unwrap();
                (
                    t.iter().map(|t| t.ts_ns).collect(),
                    vec![t.iter().map(|t| t.price).sum()],
                )
            }
            DataKind::Bars => {
                let b = reader.read_all_bars().unwrap();
                let sum = |f: fn(&Bar) -> f64| b.iter().map(f).sum::<f64>();
                (
                    b.iter().map(|b| b.ts_ns).collect(),
                    vec![
                        sum(|b| b.open),
                        sum(|b| b.high),
                        sum(|b| b.low),
                        sum(|b| b.close),
                    ],
                )
            }
        };
        assert_eq!(ts.len(), facts.rows, "{rel}");
        assert_eq!(ts[0], facts.first_ts, "{rel}");
        assert_eq!(*ts.last().unwrap(), facts.last_ts, "{rel}");
        assert_eq!(sums, facts.price_sums, "{rel}");
        assert!(!dir
            .path()
            .join(format!("{}.tmp", output.display()))
            .exists());
    }
}

#[test]
fn trades_keep_their_aggressor_side() {
    let dir = tempfile::tempdir().unwrap();
    let input = real("nq_databento_trades_2025_05_04/nqm5_trades_utc.csv");
    let out = dir.path().join("t.parquet");
    assert_ok(&nq_data(&["import", s(&input), "-o", s(&out)]));
    let ticks = read_ticks(&out).unwrap();
    let text = std::fs::read_to_string(&input).unwrap();
    let letters: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap())
        .collect();
    assert_eq!(ticks.len(), letters.len());
    for (t, l) in ticks.iter().zip(letters) {
        assert_eq!(t.side.letter(), l);
    }
}

/// Vendor originals in local New York time import to exactly the converted UTC bars.
#[test]
fn new_york_local_originals_match_the_utc_conversion() {
    let dir = tempfile::tempdir().unwrap();
    for (original, converted, extra) in [
        (
            "nq_firstrate_2023_11/original/NQ_1min_sample.csv",
            "nq_firstrate_2023_11/nq_1min_bars_utc.csv",
            None,
        ),
        // No header, and it spans the March 2023 DST change.
        (
            "es_firstrate_2023_03/original/ES_1min_sample.csv",
            "es_firstrate_2023_03/es_1min_bars_utc.csv",
            Some("csv-bars"),
        ),
    ] {
        let a = dir.path().join("local.parquet");
        let b = dir.path().join("utc.parquet");
        let mut args: Vec<String> = [
            "import",
            s(&real(original)),
            "-o",
            s(&a),
            "--tz",
            "America/New_York",
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        if let Some(f) = extra {
            args.push("--format".into());
            args.push(f.into());
        }
        let refs: Vec<&str> = args.iter().map(|x| x.as_str()).collect();
        assert_ok(&nq_data(&refs));
        assert_ok(&nq_data(&["import", s(&real(converted)), "-o", s(&b)]));
        assert_eq!(read_bars(&a).unwrap(), read_bars(&b).unwrap(), "{original}");
    }
}

#[test]
fn epoch_seconds_and_slash_dates_import_like_the_conversions() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.parquet");
    let b = dir.path().join("b.parquet");
    assert_ok(&nq_data(&[
        "import",
        s(&real("nq_databento_5min_2023_01/original/nq_5m_sample.csv")),
        "-o",
        s(&a),
    ]));
    assert_ok(&nq_data(&[
        "import",
        s(&real("nq_databento_5min_2023_01/nq_5min_bars_utc.csv")),
        "-o",
        s(&b),
    ]));
    assert_eq!(read_bars(&a).unwrap(), read_bars(&b).unwrap());
    assert_ok(&nq_data(&[
        "import",
        s(&real(
            "es_mlfinlab_ticks_2011_07_31/original/imbalance_sample_data.csv",
        )),
        "-o",
        s(&a),
    ]));
    assert_ok(&nq_data(&[
        "import",
        s(&real("es_mlfinlab_ticks_2011_07_31/es_ticks_utc.csv")),
        "-o",
        s(&b),
    ]));
    assert_eq!(read_ticks(&a).unwrap(), read_ticks(&b).unwrap());
}

#[test]
fn ninja_trader_exports_import() {
    let dir = tempfile::tempdir().unwrap();
    let ticks_txt = dir.path().join("nt_ticks.txt");
    std::fs::write(
        &ticks_txt,
        "20231120 093000 0000000;15895.25;15895;15895.25;3\r\n\
         20231120 093000 5000000;15895;15895;15895.25;1\r\n\
         20231120 093001 0000000;15895.1;15895;15895.25;2\r\n",
    )
    .unwrap();
    let out = dir.path().join("nt.parquet");
    assert_ok(&nq_data(&[
        "import",
        s(&ticks_txt),
        "-o",
        s(&out),
        "--tz",
        "America/New_York",
    ]));
    let t = read_ticks(&out).unwrap();
    // 09:30 EST on 2023-11-20 is 14:30 UTC.
    let open = 1_700_490_600_000_000_000;
    assert_eq!(
        t.iter().map(|t| t.ts_ns).collect::<Vec<_>>(),
        [open, open + 500_000_000, open + 1_000_000_000]
    );
    assert_eq!(t.iter().map(|t| t.side.letter()).collect::<String>(), "BAN");
    let bars_txt = dir.path().join("nt_min.txt");
    std::fs::write(&bars_txt, "20231120 093100;15895;15896;15894.5;15895.75;120\n20231120 093200;15895.75;15897;15895.5;15896;80\n").unwrap();
    assert_ok(&nq_data(&[
        "import",
        s(&bars_txt),
        "-o",
        s(&out),
        "--tz",
        "America/New_York",
    ]));
    let b = read_bars(&out).unwrap();
    // Stamped with the bar start: 09:30 and 09:31.
    assert_eq!(b[0].ts_ns, open);
    assert_eq!(b[1].ts_ns, open + 60_000_000_000);
}

#[test]
fn bad_lines_exit_2_with_line_number_and_leave_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.parquet");
    for (text, words) in [
        (
            "ts_utc_ns,price,size,side\n1,100,1,B\n2,abc,1,B\n",
            "line 3: field 2 (price)",
        ),
        (
            "ts_utc_ns,price,size,side\n1,100,1,B\n2,-5,1,B\n",
            "line 3: price -5",
        ),
        (
            "ts_utc_ns,price,size,side\n1,100,1,B\n2,100,-1,B\n",
            "line 3: size -1",
        ),
        (
            "ts_utc_ns,price,size,side\n5,100,1,B\n2,100,1,B\n",
            "line 3: time goes backwards",
        ),
        (
            "ts_utc_ns,price,size,side\n1,100,1,B\n2,100,1,Q\n",
            "line 3: field 4 (side)",
        ),
        (
            "ts_utc_ns,open,high,low,close,volume\n1,10,11,9,10,5\n2,10,9,9,10,5\n",
            "line 3: inconsistent bar",
        ),
        (
            "ts_utc_ns,open,high,low,close,volume\n1,10,11,9,10,5\n2,10,11,9,10\n",
            "line 3: 5 fields",
        ),
    ] {
        let input = dir.path().join("in.csv");
        std::fs::write(&input, text).unwrap();
        let o = nq_data(&["import", s(&input), "-o", s(&out)]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{text}: {stderr}");
        assert!(
            stderr.contains(words) && stderr.contains("in.csv"),
            "{text}: {stderr}"
        );
        assert!(
            !out.exists() && !dir.path().join("out.parquet.tmp").exists(),
            "{text}"
        );
    }
}

#[test]
fn skip_bad_counts_and_keeps_the_good_lines() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(
        &input,
        "ts_utc_ns,price,size,side\n1,100,1,B\n2,abc,1,B\n3,100.25,2,A\n2,100,1,B\n4,100.5,1,N\n",
    )
    .unwrap();
    let out = dir.path().join("out.parquet");
    let o = nq_data(&["import", s(&input), "-o", s(&out), "--skip-bad"]);
    assert_ok(&o);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("skipped 2 bad lines") && stdout.contains("line 3"),
        "{stdout}"
    );
    let t = read_ticks(&out).unwrap();
    assert_eq!(t.iter().map(|t| t.ts_ns).collect::<Vec<_>>(), [1, 3, 4]);
}

#[test]
fn bad_parquet_exits_2_naming_row_and_column() {
    let bad = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/bad/nan_price.parquet"
    );
    let o = nq_data(&["inspect", bad]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("nan_price.parquet: row 37, column `price`: price is NaN"),
        "{stderr}"
    );
    let o = nq_data(&["inspect", "/nonexistent/file.parquet"]);
    assert_eq!(o.status.code(), Some(2));
    let o = nq_data(&[
        "import",
        s(&real("es_mlfinlab_ticks_2011_07_31/es_ticks_utc.csv")),
        "-o",
        "/tmp/never.parquet",
        "--tz",
        "Mars/Olympus",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown time zone \"Mars/Olympus\""));
    let o = nq_data(&["import", "x.csv"]);
    assert_eq!(o.status.code(), Some(2), "missing -o is a usage error");
}

#[test]
fn inspect_reports_sessions_gaps_and_anomalies() {
    let dir = tempfile::tempdir().unwrap();
    let bars = dir.path().join("nq.parquet");
    assert_ok(&nq_data(&[
        "import",
        s(&real("nq_firstrate_2023_11/nq_1min_bars_utc.csv")),
        "-o",
        s(&bars),
    ]));
    let o = nq_data(&["inspect", s(&bars), "--json"]);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["rows"], 14714);
    assert_eq!(v["kind"], "bars");
    assert_eq!(v["first"], "2023-11-19T23:00:00Z");
    // 2023-11-20 .. 2023-12-04: 11 weekdays; Thanksgiving (23rd) has no RTH session on CME equity... but it trades a short session.
    let rth = v["rth_days"].as_u64().unwrap();
    assert!((10..=11).contains(&rth), "{rth}");
    assert_eq!(v["anomalies"]["off_grid_prices"], 0);
    // Weekends show as gaps of more than a day.
    assert!(v["longest_gaps"][0]["minutes"].as_f64().unwrap() > 24.0 * 60.0);
    let hours = v["volume_by_ny_hour"].as_array().unwrap();
    let vol = |h: usize| hours[h].as_f64().unwrap();
    assert!(vol(10) > vol(3), "RTH busier than the night");
    let text = nq_data(&["inspect", s(&bars)]);
    assert_ok(&text);
    assert!(String::from_utf8_lossy(&text.stdout).contains("Globex days"));
}

#[test]
fn split_by_date_and_by_last_days() {
    let dir = tempfile::tempdir().unwrap();
    let ticks = dir.path().join("t.parquet");
    let mut w = TickWriter::create(&ticks).unwrap();
    // One tick per hour over 5 days from Monday 2023-11-20 00:00 UTC.
    let start = 1_700_438_400_000_000_000i64;
    let all: Vec<Tick> = (0..120)
        .map(|h| Tick {
            ts_ns: start + h * 3_600_000_000_000,
            price: 15000.0,
            size: 1.0,
            ..Tick::default()
        })
        .collect();
    w.write(&all).unwrap();
    w.finish().unwrap();
    let train = dir.path().join("train.parquet");
    let test = dir.path().join("test.parquet");
    assert_ok(&nq_data(&[
        "split",
        s(&ticks),
        "--train",
        s(&train),
        "--test",
        s(&test),
        "--test-from",
        "2023-11-23",
    ]));
    let (a, b) = (read_ticks(&train).unwrap(), read_ticks(&test).unwrap());
    assert_eq!(a.len() + b.len(), all.len());
    // 2023-11-23 trading day starts 2023-11-22 18:00 New York = 23:00 UTC.
    let cut = 1_700_694_000_000_000_000i64;
    assert!(a.iter().all(|t| t.ts_ns < cut) && b.iter().all(|t| t.ts_ns >= cut));
    assert_eq!(b[0].ts_ns, cut);
    assert_ok(&nq_data(&[
        "split",
        s(&ticks),
        "--train",
        s(&train),
        "--test",
        s(&test),
        "--test-days",
        "1",
    ]));
    let b = read_ticks(&test).unwrap();
    assert!(b
        .iter()
        .all(|t| t.ts_ns >= start + 4 * 86_400_000_000_000 - 5 * 3_600_000_000_000));
    // An empty side is an error and writes nothing.
    let (t2, s2) = (dir.path().join("t2.parquet"), dir.path().join("s2.parquet"));
    let o = nq_data(&[
        "split",
        s(&ticks),
        "--train",
        s(&t2),
        "--test",
        s(&s2),
        "--test-from",
        "2030-01-01",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!t2.exists() && !s2.exists());
}

#[test]
fn help_teaches_with_examples() {
    let o = nq_data(&["--help"]);
    assert_ok(&o);
    let h = String::from_utf8_lossy(&o.stdout);
    assert!(
        h.contains("Examples")
            && h.contains("nq-data import")
            && h.contains("inspect")
            && h.contains("split"),
        "{h}"
    );
    let o = nq_data(&["import", "--help"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("ninja-minutes"));
}

#[test]
fn text_given_where_parquet_is_expected_says_how_to_convert() {
    let csv = real("nq_firstrate_2023_11/nq_1min_bars_utc.csv");
    let out = nq_data(&["inspect", s(&csv)]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nq_1min_bars_utc.csv"), "{err}");
    assert!(err.contains("nq-data import"), "{err}");
}

#[test]
fn inspect_describes_checkpoints_and_exits_2_on_a_refused_one() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../runtime/fixtures/policy/policy_tanh_p1.safetensors");
    let out = nq_data(&["inspect", s(&fixture), "--json"]);
    assert_ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &json[0];
    assert_eq!(first["accepted"]["obs_dim"], 225);
    assert_eq!(first["metadata"]["phase"], "1");
    assert_eq!(
        first["accepted"]["obs_layout_hash"],
        first["runtime_layout_hash"]
    );

    // The same file with another layout hash (same length, header intact).
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(&fixture).unwrap();
    let hash = first["runtime_layout_hash"].as_str().unwrap().as_bytes();
    let at = bytes.windows(hash.len()).position(|w| w == hash).unwrap();
    bytes[at..at + hash.len()].copy_from_slice(b"0123456789abcdef");
    let other = dir.path().join("other.safetensors");
    std::fs::write(&other, &bytes).unwrap();
    let out = nq_data(&["inspect", s(&other)]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("runtime: REFUSED"), "{stdout}");
    assert!(
        stderr.contains("other.safetensors") && stderr.contains("0123456789abcdef"),
        "{stderr}"
    );

    let mixed = nq_data(&["inspect", s(&fixture), s(&real("nq_firstrate_2023_11"))]);
    assert_eq!(mixed.status.code(), Some(2));
}
