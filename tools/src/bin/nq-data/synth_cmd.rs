//! `nq-data synth`: seeded synthetic ticks to Parquet (see `nq_tools::synth`).

use std::path::PathBuf;

use chrono::NaiveDate;
use nq_formats::{Instrument, Tick};
use nq_tools::market_data::TickWriter;
use nq_tools::synth::{trading_days, SynthConfig, SynthGenerator};
use nq_tools::time::format_ts;
use nq_tools::{Error, Result};

/// Generate seeded synthetic NQ ticks: same flags, same bytes.
#[derive(clap::Args)]
#[command(
    long_about = "Generate seeded synthetic NQ ticks with the structure of the real market: \
prices on the tick grid; CME Globex days (18:00-17:00 America/New_York, DST-correct, no \
trades in the 17:00-18:00 break or at weekends); RTH 09:30-16:00 much busier, with a U-shaped \
volume and volatility profile; volatility clustering (GARCH); trending and mean-reverting \
regimes; buyer/seller aggressor leaning with the price move; sizes mostly 1-3 lots with a \
heavy tail.\n\n\
The output depends only on the flags: the same flags give byte-identical files on every \
platform. Exchange holidays are not modelled: every weekday trades.",
    after_help = "Examples:\n  \
nq-data synth --days 20 --seed 1 -o synth.parquet\n  \
nq-data synth --days 5 --seed 7 --start-date 2024-11-01 --rth-only -o rth.parquet\n  \
nq-data synth --days 3 --instrument ES --start-price 5200 -o es.parquet"
)]
pub struct SynthArgs {
    /// Number of trading days (weekdays) to generate.
    #[arg(long, default_value_t = SynthConfig::default().days)]
    days: u32,
    /// Random seed; the same seed and flags give the same file.
    #[arg(long, default_value_t = SynthConfig::default().seed)]
    seed: u64,
    /// Parquet file to write (through `<file>.tmp`, renamed when complete).
    #[arg(short, long, visible_alias = "out", default_value = "synth.parquet")]
    output: PathBuf,
    /// First trading day, YYYY-MM-DD (a weekend date moves to the Monday after);
    /// its session opens at 18:00 New York the evening before.
    #[arg(long, default_value_t = SynthConfig::default().start_date, value_parser = parse_date)]
    start_date: NaiveDate,
    /// Price to start near, in points.
    #[arg(long, default_value_t = SynthConfig::default().start_price)]
    start_price: f64,
    /// Instrument whose tick grid the prices use (NQ, MNQ, ES, MES, YM, RTY).
    #[arg(long, default_value = "NQ", value_parser = parse_instrument)]
    instrument: Instrument,
    /// Average trades per RTH minute (the night has a fraction of this).
    #[arg(long, default_value_t = SynthConfig::default().ticks_per_rth_minute)]
    ticks_per_rth_minute: f64,
    /// Standard deviation of a 1-minute return in an average RTH minute, as a
    /// fraction of the start price.
    #[arg(long, default_value_t = SynthConfig::default().rth_minute_volatility)]
    rth_minute_volatility: f64,
    /// Write only RTH trades (09:30-16:00 New York).
    #[arg(long)]
    rth_only: bool,
}

fn parse_date(s: &str) -> std::result::Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| format!("`{s}` is not a date in YYYY-MM-DD form: {e}"))
}

fn parse_instrument(s: &str) -> std::result::Result<Instrument, String> {
    Instrument::from_symbol(s).ok_or_else(|| {
        let known: Vec<&str> = Instrument::ALL.iter().map(|i| i.symbol()).collect();
        format!("unknown instrument `{s}`; known: {}", known.join(", "))
    })
}

impl SynthArgs {
    fn config(&self) -> SynthConfig {
        SynthConfig {
            seed: self.seed,
            days: self.days,
            start_date: self.start_date,
            start_price: self.start_price,
            instrument: self.instrument,
            ticks_per_rth_minute: self.ticks_per_rth_minute,
            rth_minute_volatility: self.rth_minute_volatility,
            rth_only: self.rth_only,
        }
    }
}

/// Ticks handed to the writer at once: bounded memory, few small batches.
const CHUNK: usize = 64 * 1024;

pub fn run(args: &SynthArgs) -> Result<()> {
    let cfg = args.config();
    let generator = SynthGenerator::new(cfg.clone()).map_err(|e| Error::Usage(e.to_string()))?;
    let mut writer = TickWriter::create(&args.output)?;
    let mut chunk: Vec<Tick> = Vec::with_capacity(CHUNK);
    let (mut first, mut last) = (None, None);
    for tick in generator {
        first.get_or_insert(tick.ts_ns);
        last = Some(tick.ts_ns);
        chunk.push(tick);
        if chunk.len() == CHUNK {
            writer.write(&chunk)?;
            chunk.clear();
        }
    }
    writer.write(&chunk)?;
    let rows = writer.finish()?;
    let days: Vec<NaiveDate> = trading_days(cfg.start_date, cfg.days).collect();
    eprintln!(
        "wrote {rows} {} ticks to {} ({} trading days {}..{}, {} to {})",
        cfg.instrument,
        args.output.display(),
        days.len(),
        days[0],
        days[days.len() - 1],
        first.map(format_ts).unwrap_or_default(),
        last.map(format_ts).unwrap_or_default(),
    );
    Ok(())
}
