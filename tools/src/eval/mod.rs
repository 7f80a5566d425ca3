//! Backtests: one checkpoint replayed over market data through the runtime's
//! [`Engine`] (ticks tick by tick, bars bar by bar), so evaluation fills,
//! brackets and P&L are exactly what live execution would compute.
//!
//! ```no_run
//! use nq_tools::checkpoint_file::CheckpointFile;
//! use nq_tools::eval::{replay, Summary};
//! use nq_tools::market_data::MarketReader;
//! let ckpt = CheckpointFile::read("final.safetensors")?;
//! let data = MarketReader::open("ticks.parquet")?;
//! let run = replay("final", &ckpt, None, &data, Default::default())?;
//! let summary = Summary::of(&run);
//! println!("{} trades, net {:.2} USD", summary.trades, summary.net_pnl_usd);
//! # Ok::<(), nq_tools::Error>(())
//! ```

pub mod report;
mod summary;

pub use summary::{Summary, ANNUALISATION_DAYS, SORT_METRICS};

use nq_formats::{Action, SimConfig};
use nq_runtime::engine::{Decision, Engine, EngineConfig};
use nq_runtime::policy::MAX_ACTIONS;
use nq_runtime::sim::TradeRecord;

use crate::checkpoint_file::CheckpointFile;
use crate::market_data::{DataKind, MarketReader};
use crate::time::NewYorkClock;
use crate::Result;

/// The sessions to replay, as CME trading dates (both ends included; `None`
/// leaves that side open).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DateRange {
    pub from: Option<chrono::NaiveDate>,
    pub to: Option<chrono::NaiveDate>,
}

impl DateRange {
    fn contains(&self, clock: &mut NewYorkClock, ts_ns: i64) -> bool {
        if self.from.is_none() && self.to.is_none() {
            return true;
        }
        let day = clock.trading_date(ts_ns);
        self.from.is_none_or(|f| day >= f) && self.to.is_none_or(|t| day <= t)
    }
}

/// One decision bar of a replay, an `equity.parquet` row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EquityRow {
    /// When the decision was made (the bar's end).
    pub ts_ns: i64,
    pub equity: f64,
    pub balance: f64,
    /// Position held when deciding (-1, 0, +1).
    pub position: i8,
    pub action: Action,
    pub probs: [f32; MAX_ACTIONS],
    /// How many entries of `probs` belong to the checkpoint's action set.
    pub n_actions: u8,
    /// Bit `i` set when action code `i` was allowed.
    pub mask: u8,
}

/// Everything one replay produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// The label in reports (checkpoint file stem or baseline name).
    pub name: String,
    /// `"policy"` or `"baseline"`.
    pub kind: &'static str,
    pub sim: SimConfig,
    pub trades: Vec<TradeRecord>,
    pub equity: Vec<EquityRow>,
    pub breached: bool,
    /// The position still open when the data ran out (the engine offers no
    /// way to close it, so it is marked to market in the last equity row and
    /// absent from `trades`), 0 when flat.
    pub open_at_end: i8,
    /// Ticks or bars replayed.
    pub records: u64,
}

/// Replays `data` through an engine over `checkpoint` (its own settings, or
/// `config`), over the sessions in `range`. Errors name the checkpoint or the
/// data file at fault.
pub fn replay(
    name: &str,
    checkpoint: &CheckpointFile,
    config: Option<EngineConfig>,
    data: &MarketReader,
    range: DateRange,
) -> Result<Run> {
    let mut clock = NewYorkClock::new();
    let mut engine = checkpoint.engine(config)?;
    let sim = *engine.simulator().config();
    let mut run = Run {
        name: name.to_string(),
        kind: "policy",
        sim,
        trades: Vec::new(),
        equity: Vec::new(),
        breached: false,
        open_at_end: 0,
        records: 0,
    };
    match data.kind() {
        DataKind::Ticks => data.for_each_tick_chunk(|ticks| {
            for tick in ticks.iter().filter(|t| range.contains(&mut clock, t.ts_ns)) {
                // The reader validated every tick, so a refusal cannot happen;
                // were it to, skipping it is what live execution would do.
                let decision = engine.on_tick(tick).ok().flatten();
                collect(&engine, decision, &mut run);
            }
            run.records += ticks.len() as u64;
            Ok(())
        })?,
        DataKind::Bars => data.for_each_bar_chunk(|bars| {
            for bar in bars.iter().filter(|b| range.contains(&mut clock, b.ts_ns)) {
                let decision = engine.on_bar(bar);
                collect(&engine, decision, &mut run);
            }
            run.records += bars.len() as u64;
            Ok(())
        })?,
    }
    run.breached |= engine.simulator().is_breached();
    run.open_at_end = engine.simulator().position_side();
    Ok(run)
}

fn collect(engine: &Engine<'_>, decision: Option<Decision>, run: &mut Run) {
    let events = engine.events();
    if let Some(trade) = events.exit {
        run.trades.push(trade);
    }
    run.breached |= events.breached;
    if let Some(d) = decision {
        run.equity.push(EquityRow {
            ts_ns: d.ts_ns,
            equity: d.equity,
            balance: engine.simulator().balance(),
            position: d.position,
            action: d.action,
            probs: d.probs,
            n_actions: d.n_actions,
            mask: d.mask.bits(),
        });
    }
}

/// The always-flat baseline over the decision bars of `run`: no trades, the
/// balance never moves. Nothing to simulate, so it is derived, not replayed.
pub fn flat_baseline(run: &Run) -> Run {
    let start = run.sim.starting_balance;
    Run {
        name: "flat".to_string(),
        kind: "baseline",
        sim: run.sim,
        trades: Vec::new(),
        equity: run
            .equity
            .iter()
            .map(|row| {
                let mut probs = [0.0; MAX_ACTIONS];
                probs[0] = 1.0;
                EquityRow {
                    ts_ns: row.ts_ns,
                    equity: start,
                    balance: start,
                    position: 0,
                    action: Action::Hold,
                    probs,
                    n_actions: row.n_actions,
                    mask: row.mask,
                }
            })
            .collect(),
        breached: false,
        open_at_end: 0,
        records: run.records,
    }
}
