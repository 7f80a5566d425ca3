//! `nq-data synth` end to end: byte-identical reruns, the committed sample in
//! `data/` is exactly what its README command makes, the file reads back as
//! the generator's ticks, and bad flags are user errors with no output.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::NaiveDate;
use nq_formats::Tick;
use nq_tools::market_data::MarketReader;
use nq_tools::synth::{SynthConfig, SynthGenerator};

const NQ_DATA: &str = env!("CARGO_BIN_EXE_nq-data");

/// The command in `data/README.md` that made the committed sample.
const SAMPLE_ARGS: [&str; 7] = [
    "synth",
    "--days",
    "10",
    "--seed",
    "7",
    "--ticks-per-rth-minute",
    "100",
];
const SAMPLE_FILE: &str = "nq_synth_ticks.parquet";

fn synth(args: &[&str], out: &Path) -> std::process::Output {
    Command::new(NQ_DATA)
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .expect("nq-data runs")
}

fn read_ticks(path: &Path) -> Vec<Tick> {
    let mut ticks = Vec::new();
    MarketReader::open(path)
        .unwrap()
        .for_each_tick_chunk(|chunk| {
            ticks.extend_from_slice(chunk);
            Ok(())
        })
        .unwrap();
    ticks
}

#[test]
fn twenty_days_seed_one_twice_gives_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
    for out in [&a, &b] {
        let run = synth(&["synth", "--days", "20", "--seed", "1"], out);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let (bytes_a, bytes_b) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(bytes_a.len() > 1_000_000);
    assert!(bytes_a == bytes_b, "two runs with the same seed differ");

    let other = dir.path().join("c.parquet");
    assert!(synth(&["synth", "--days", "20", "--seed", "2"], &other)
        .status
        .success());
    assert!(std::fs::read(&other).unwrap() != bytes_a);
}

#[test]
fn the_file_holds_exactly_the_generated_ticks() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.parquet");
    let args = [
        "synth",
        "--days",
        "2",
        "--seed",
        "5",
        "--start-date",
        "2024-11-01",
        "--rth-only",
    ];
    let run = synth(&args, &out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let expected: Vec<Tick> = SynthGenerator::new(SynthConfig {
        seed: 5,
        days: 2,
        start_date: NaiveDate::from_ymd_opt(2024, 11, 1).unwrap(),
        rth_only: true,
        ..SynthConfig::default()
    })
    .unwrap()
    .collect();
    assert_eq!(read_ticks(&out), expected);
    assert!(String::from_utf8_lossy(&run.stderr).contains(&format!("wrote {}", expected.len())));
}

#[test]
fn committed_sample_is_what_the_readme_command_makes() {
    let committed =
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../data")).join(SAMPLE_FILE);
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../data/README.md")).unwrap();
    let command = format!("nq-data {} --out data/{SAMPLE_FILE}", SAMPLE_ARGS.join(" "));
    assert!(
        readme.contains(&command),
        "data/README.md does not show `{command}`"
    );

    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join(SAMPLE_FILE);
    let run = synth(&SAMPLE_ARGS, &fresh);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let committed_bytes = std::fs::read(&committed).unwrap();
    assert!(committed_bytes.len() < 5_000_000, "sample grew past 5 MB");
    assert!(
        std::fs::read(&fresh).unwrap() == committed_bytes,
        "data/{SAMPLE_FILE} is not what `{command}` makes now: regenerate it and update data/README.md"
    );
}

#[test]
fn bad_flags_exit_2_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bad.parquet");
    for args in [
        &["synth", "--days", "0"][..],
        &["synth", "--start-price", "-3"],
        &["synth", "--ticks-per-rth-minute", "0"],
        &["synth", "--instrument", "CL"],
        &["synth", "--start-date", "2024-13-01"],
    ] {
        let run = synth(args, &out);
        assert_eq!(run.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!out.exists(), "{args:?} left a file");
        assert!(!dir.path().join("bad.parquet.tmp").exists());
    }
    let missing_dir = dir.path().join("no/such/dir/x.parquet");
    let run = synth(&["synth", "--days", "1"], &missing_dir);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("no/such/dir"));
}
