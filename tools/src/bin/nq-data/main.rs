//! `nq-data`: import, inspect, split and synthesise market data.
//!
//! Note for the `synth` subcommand (synth_cmd.rs, written separately): it must
//! provide `#[derive(clap::Args)] pub struct SynthArgs` and
//! `pub fn run(args: &SynthArgs) -> Result<(), nq_tools::Error>`. Return
//! `nq_tools::Error::Usage(..)` / `BadFile` / `Io` for user errors (exit 2) and
//! `nq_tools::Error::Internal(..)` for bugs (exit 1); write output through
//! `nq_tools::market_data::TickWriter` (temp file, then rename on finish).

mod synth_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use nq_formats::Instrument;
use nq_tools::checkpoint_file::CheckpointFile;
use nq_tools::inspect::{inspect, InspectOptions};
use nq_tools::market_data::MarketReader;
use nq_tools::split::{split, SplitAt};
use nq_tools::stdout::Stdout;
use nq_tools::text_import::{import_file, parse_tz, ImportOptions, TextFormat};
use nq_tools::{Error, Result};

#[derive(Parser)]
#[command(
    name = "nq-data",
    version,
    about = "Import, inspect, split and synthesise futures market data (ticks or bars in Parquet).",
    long_about = "Import, inspect, split and synthesise futures market data.\n\n\
Every command reads and writes Parquet in the nq schemas (ticks: ts, price, size, side; \
bars: ts, open, high, low, close, volume; ts in UTC nanoseconds). Readers also accept \
files written by pandas, polars or pyarrow with other timestamp units, float32/decimal \
prices and the usual column names (ts_event, timestamp, last, px, qty, ...).\n\n\
Errors name the file, row (0-based) or line (1-based) and column; they exit with \
code 2 and leave no partial output.",
    after_help = "Examples:\n  \
nq-data import trades.csv -o ticks.parquet\n  \
nq-data import NQ_1min.csv -o bars.parquet --tz America/New_York\n  \
nq-data inspect ticks.parquet\n  \
nq-data split ticks.parquet --train train.parquet --test test.parquet --test-days 5\n  \
nq-data synth --days 20 --seed 1 -o synth.parquet\n\n\
Run `nq-data <command> --help` for the details of each command."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Import(ImportArgs),
    Inspect(InspectArgs),
    Split(SplitArgs),
    /// Generate seeded synthetic NQ ticks.
    Synth(synth_cmd::SynthArgs),
}

/// Convert text market data (CSV, NinjaTrader export) to Parquet.
#[derive(Args)]
#[command(
    after_help = "Layouts (detected from the first lines unless --format is given):\n  \
csv-ticks      time,price,size[,side]            e.g. ts_utc_ns,price,size,side\n  \
csv-bars       time,open,high,low,close,volume   e.g. timestamp,open,high,low,close,volume\n  \
ninja-ticks    yyyyMMdd HHmmss fffffff;last;bid;ask;volume   (side from last vs bid/ask)\n  \
ninja-minutes  yyyyMMdd HHmmss;open;high;low;close;volume    (NinjaTrader stamps the bar END;\n                 \
the bar length --ninja-bar-seconds is subtracted to stamp the start)\n\n\
CSV times: integer epoch (s, ms, us or ns, told apart by magnitude) or text\n\
`2023-11-19 18:00:00[.fff]` with `-` or `/`, space or `T`, optional `Z`/`+HH:MM`.\n\
Text times without an offset are in --tz (default UTC). In a repeated fall-back hour the\n\
earlier reading is used unless that would go back in time; a skipped spring-forward time\n\
is an error. A first line that is not data is a header.\n\n\
Examples:\n  \
nq-data import nqm5_trades_utc.csv -o nqm5.parquet\n  \
nq-data import NQ_1min_sample.csv -o nq_1min.parquet --tz America/New_York\n  \
nq-data import export.txt -o ticks.parquet --format ninja-ticks --tz America/New_York --skip-bad"
)]
struct ImportArgs {
    /// Text file to read.
    input: PathBuf,
    /// Parquet file to write (ticks or bars, as the input holds).
    #[arg(short, long)]
    output: PathBuf,
    /// Force the layout: csv-ticks, csv-bars, ninja-ticks, ninja-minutes.
    #[arg(long, value_parser = parse_format)]
    format: Option<TextFormat>,
    /// Time zone of times written without an offset (IANA name).
    #[arg(long, default_value = "UTC")]
    tz: String,
    /// Skip malformed lines and report how many, instead of stopping at the first.
    #[arg(long)]
    skip_bad: bool,
    /// Bar length of a NinjaTrader minute export, in seconds.
    #[arg(long, default_value_t = 60)]
    ninja_bar_seconds: i64,
}

/// Summarise a Parquet file (or several, or a directory): schema, rows, time
/// span, sessions, gaps, price range, volume profile and anomalies.
#[derive(Args)]
#[command(
    after_help = "Sessions are CME trading days in America/New_York: a day runs from 18:00 the\n\
evening before (Globex); RTH is 09:30-16:00. Anomalies (off-grid prices, duplicates,\n\
zero sizes, jumps) are counted, not errors; invalid data (NaN price, time going\n\
backwards, ...) is an error with exit code 2.\n\n\
Examples:\n  \
nq-data inspect ticks.parquet\n  \
nq-data inspect data/ --json | jq .days\n  \
nq-data inspect es.parquet --instrument ES --gap-minutes 5\n  \
nq-data inspect runs/p1/final.safetensors        # a checkpoint: metadata, tensors, accepted?"
)]
struct InspectArgs {
    /// Parquet files or directories, read as one time-ordered stream; or
    /// checkpoints (`.safetensors`), each described on its own.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Instrument whose tick grid prices are checked against (NQ, MNQ, ES, MES, YM, RTY).
    #[arg(long, default_value = "NQ")]
    instrument: String,
    /// List pauses longer than this many minutes as gaps.
    #[arg(long, default_value_t = 30.0)]
    gap_minutes: f64,
}

/// Split data by trading date into a train file and a test file.
#[derive(Args)]
#[command(
    after_help = "Dates are CME trading days in America/New_York (from 18:00 the evening before),\n\
so no overnight session is cut in two. Both files are written or neither.\n\n\
Examples:\n  \
nq-data split ticks.parquet --train train.parquet --test test.parquet --test-from 2023-12-01\n  \
nq-data split data/ --train train.parquet --test test.parquet --test-days 5"
)]
#[command(group(clap::ArgGroup::new("at").required(true).args(["test_from", "test_days"])))]
struct SplitArgs {
    /// Parquet files or directories, read as one time-ordered stream.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output for the earlier days.
    #[arg(long)]
    train: PathBuf,
    /// Output for the later days.
    #[arg(long)]
    test: PathBuf,
    /// First trading date of the test set (YYYY-MM-DD).
    #[arg(long, value_parser = parse_date)]
    test_from: Option<NaiveDate>,
    /// Put the last N trading days in the test set.
    #[arg(long)]
    test_days: Option<usize>,
}

fn parse_format(s: &str) -> std::result::Result<TextFormat, String> {
    TextFormat::from_name(s).ok_or_else(|| {
        format!(
            "unknown format {s:?}; one of {}",
            TextFormat::ALL.map(TextFormat::name).join(", ")
        )
    })
}

fn parse_date(s: &str) -> std::result::Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("{s:?} is not a date YYYY-MM-DD"))
}

fn run_import(args: &ImportArgs) -> Result<()> {
    let opts = ImportOptions {
        format: args.format,
        tz: parse_tz(&args.tz)?,
        skip_bad: args.skip_bad,
        ninja_bar_seconds: args.ninja_bar_seconds,
    };
    let report = import_file(&args.input, &args.output, &opts)?;
    let span = match (report.first_ts, report.last_ts) {
        (Some(a), Some(b)) => format!(
            ", {} .. {}",
            nq_tools::time::format_ts(a),
            nq_tools::time::format_ts(b)
        ),
        _ => String::new(),
    };
    let mut out = Stdout::new();
    out.println(&format!(
        "{}: {} records ({}, {}{span}) -> {}",
        args.input.display(),
        report.records,
        report.format,
        report.format.kind(),
        args.output.display()
    ))?;
    if report.skipped > 0 {
        out.println(&format!(
            "skipped {} bad lines; first: {}",
            report.skipped,
            report.first_skipped.unwrap_or_default()
        ))?;
    }
    Ok(())
}

fn is_checkpoint(path: &std::path::Path) -> bool {
    path.extension().is_some_and(|e| e == "safetensors")
}

/// Describes each checkpoint; exit 2 if the runtime refuses any of them, after
/// printing what they hold (a refusal is what the user came to find out).
fn inspect_checkpoints(args: &InspectArgs) -> Result<()> {
    let mut summaries = Vec::new();
    for path in &args.inputs {
        summaries.push(CheckpointFile::read(path)?.summary()?);
    }
    let mut out = Stdout::new();
    if args.json {
        let text = serde_json::to_string_pretty(&summaries)
            .map_err(|e| Error::Internal(format!("summary to JSON: {e}")))?;
        out.println(&text)?;
    } else {
        for s in &summaries {
            out.print(&s.to_string())?;
        }
    }
    match summaries.iter().find(|s| s.refusal.is_some()) {
        Some(s) => Err(Error::BadFile {
            file: s.file.clone(),
            column: None,
            problem: format!(
                "the runtime refuses this checkpoint: {}",
                s.refusal.as_deref().unwrap_or_default()
            ),
        }),
        None => Ok(()),
    }
}

fn run_inspect(args: &InspectArgs) -> Result<()> {
    let checkpoints = args.inputs.iter().filter(|p| is_checkpoint(p)).count();
    if checkpoints == args.inputs.len() {
        return inspect_checkpoints(args);
    }
    if checkpoints > 0 {
        return Err(Error::Usage(
            "inspect either market data or checkpoints (.safetensors), not both at once".into(),
        ));
    }
    let instrument = Instrument::from_symbol(&args.instrument).ok_or_else(|| {
        Error::Usage(format!(
            "unknown instrument {:?}; one of NQ, MNQ, ES, MES, YM, RTY",
            args.instrument
        ))
    })?;
    let reader = MarketReader::open_many(&args.inputs)?;
    let report = inspect(
        &reader,
        InspectOptions {
            tick_size: instrument.spec().tick_size,
            gap_minutes: args.gap_minutes,
            ..InspectOptions::default()
        },
    )?;
    let text = if args.json {
        serde_json::to_string_pretty(&report)
            .map_err(|e| Error::Internal(format!("report to JSON: {e}")))?
    } else {
        report.to_string()
    };
    Stdout::new().println(&text)?;
    Ok(())
}

fn run_split(args: &SplitArgs) -> Result<()> {
    let at = match (args.test_from, args.test_days) {
        (Some(d), _) => SplitAt::From(d),
        (None, Some(n)) => SplitAt::LastDays(n),
        (None, None) => return Err(Error::Usage("give --test-from or --test-days".into())),
    };
    let reader = MarketReader::open_many(&args.inputs)?;
    let r = split(&reader, at, &args.train, &args.test)?;
    Stdout::new().println(&format!(
        "{}: train {} rows over {} days -> {}; test {} rows over {} days from {} -> {}",
        r.kind,
        r.train_rows,
        r.train_days,
        args.train.display(),
        r.test_rows,
        r.test_days,
        r.test_from,
        args.test.display()
    ))?;
    Ok(())
}

fn run(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Import(a) => run_import(a),
        Command::Inspect(a) => run_inspect(a),
        Command::Split(a) => run_split(a),
        Command::Synth(a) => synth_cmd::run(a),
    }
}

fn main() -> ExitCode {
    // clap exits with 2 on bad flags by itself.
    let cli = Cli::parse();
    // A panic is a bug: report it as such (exit 1), never as a crash trace alone.
    match std::panic::catch_unwind(|| run(&cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("nq-data: error: {e}");
            ExitCode::from(e.exit_code())
        }
        Err(_) => {
            eprintln!("nq-data: internal error (a bug; please report it)");
            ExitCode::from(1)
        }
    }
}
