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
//! let run = replay("final", &ckpt, None, &data, Default::default(), &mut |_| {})?;
//! let summary = Summary::of(&run);
//! println!("{} trades, net {:.2} USD", summary.trades, summary.net_pnl_usd);
//! # Ok::<(), nq_tools::Error>(())
//! ```

pub mod assess;
mod buy_and_hold;
mod overrides;
pub mod picture;
pub mod report;
pub mod sample;
pub mod significance;
mod summary;

pub use overrides::SimOverrides;
pub use summary::{daily_pnl_by_date, Comparison, Summary, ANNUALISATION_DAYS, SORT_METRICS};

use nq_formats::{Action, Bar, SimConfig};
use nq_runtime::engine::{Decision, EngineConfig, Step};
use nq_runtime::policy::{Rng, MAX_ACTIONS};
use nq_runtime::sim::TradeRecord;
use nq_runtime::step::ClosedBar;
use nq_runtime::ActionMask;

use crate::checkpoint_file::CheckpointFile;
use crate::market_data::{DataKind, MarketReader};
use crate::time::NewYorkClock;
use crate::{Error, Result};

/// The sessions to replay, as CME trading dates (both ends included; `None`
/// leaves that side open).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DateRange {
    pub from: Option<chrono::NaiveDate>,
    pub to: Option<chrono::NaiveDate>,
}

/// What a replay does with a record, against a [`DateRange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// After the range: dropped.
    Skip,
    /// Before it: to the engine with HOLD only, no rows, no trades, so the
    /// features are warm at its start as in a replay of the whole file
    /// (SPEC 4: indicators may warm up on earlier sessions).
    WarmUp,
    /// In the range. `row` is false for the first tick in it, which closes
    /// the last warm-up bar: that bar is not in the range.
    Replay { row: bool },
}

/// The one rule for which records of the data a replay warms up on,
/// replays and drops.
struct RangeGate {
    range: DateRange,
    clock: NewYorkClock,
    warming_up: bool,
}

impl RangeGate {
    fn new(range: DateRange) -> RangeGate {
        RangeGate {
            range,
            clock: NewYorkClock::new(),
            warming_up: false,
        }
    }

    fn tick(&mut self, ts_ns: i64) -> Gate {
        match self.bar(ts_ns) {
            Gate::WarmUp => {
                self.warming_up = true;
                Gate::WarmUp
            }
            Gate::Replay { .. } => Gate::Replay {
                row: !std::mem::take(&mut self.warming_up),
            },
            Gate::Skip => Gate::Skip,
        }
    }

    /// A bar closes itself, so no bar straddles the range's start.
    fn bar(&mut self, ts_ns: i64) -> Gate {
        let range = &self.range;
        if range.from.is_none() && range.to.is_none() {
            return Gate::Replay { row: true };
        }
        let day = self.clock.trading_date(ts_ns);
        if range.from.is_some_and(|f| day < f) {
            Gate::WarmUp
        } else if range.to.is_some_and(|t| day > t) {
            Gate::Skip
        } else {
            Gate::Replay { row: true }
        }
    }
}

/// The chooser of warm-up replays: never an order.
fn hold(_: ActionMask, _: i8) -> Action {
    Action::Hold
}

/// One bar close of a replay, an `equity.parquet` row. Every bar the engine
/// closes has one, so it stays small (48 bytes): what was decided, on the
/// bars that brought a decision, is a [`DecisionRow`] of its own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EquityRow {
    /// The bar's end: when a decision was (or would have been) made.
    pub ts_ns: i64,
    /// Balance plus open P&L marked at `close`.
    pub equity: f64,
    pub balance: f64,
    /// The bar close and the ATR then (points).
    pub close: f64,
    pub atr: f64,
    /// Position held at the close, before any decision (-1, 0, +1).
    pub position: i8,
    pub kind: RowKind,
}

/// Why a row is there, the `kind` column: the runtime's own account of the
/// bar close (a decision of some kind, warm-up, or outside the session).
pub use nq_runtime::step::BarKind as RowKind;

/// What was decided at a decision row: the rest of its `equity.parquet` columns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecisionRow {
    pub action: Action,
    pub probs: [f32; MAX_ACTIONS],
    /// How many entries of `probs` belong to the checkpoint's action set.
    pub n_actions: u8,
    /// Bit `i` set when action code `i` was allowed.
    pub mask: u8,
    /// The position to hold after the decision (-1, 0, +1).
    pub target_position: i8,
    /// The bracket to hold after the decision; `None` when the target is
    /// flat. For an entry it is indicative, placed from `close`.
    pub stop_price: Option<f64>,
    pub target_price: Option<f64>,
}

impl EquityRow {
    /// The row of a bar close with decision `d`, the account balance being
    /// `balance` after the input that closed the bar.
    fn of_decision(d: &Decision, balance: f64) -> EquityRow {
        EquityRow {
            ts_ns: d.ts_ns,
            equity: d.equity,
            balance,
            close: d.close,
            atr: d.atr,
            position: d.position,
            kind: RowKind::Decided(d.kind),
        }
    }

    /// The row of a bar close without a decision: the account at that close.
    fn of_bar(bar: &ClosedBar) -> EquityRow {
        EquityRow {
            ts_ns: bar.ts_ns,
            equity: bar.equity,
            balance: bar.balance,
            close: bar.close,
            atr: bar.atr,
            position: bar.position,
            kind: bar.kind,
        }
    }

    pub fn is_decision(&self) -> bool {
        matches!(self.kind, RowKind::Decided(_))
    }
}

impl DecisionRow {
    fn of(d: &Decision) -> DecisionRow {
        DecisionRow {
            action: d.action,
            probs: d.probs,
            n_actions: d.n_actions,
            mask: d.mask.bits(),
            target_position: d.target_position,
            stop_price: d.stop_price,
            target_price: d.target_price,
        }
    }
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
    /// One row per bar closed, in time order.
    pub equity: Vec<EquityRow>,
    /// What was decided at each decision row of `equity`, in the same order.
    pub decisions: Vec<DecisionRow>,
    pub breached: bool,
    /// The position still open when the data ran out (closed at the last
    /// price as an `END_OF_DATA` trade), 0 when flat.
    pub open_at_end: i8,
    /// Ticks or bars replayed.
    pub records: u64,
    /// Largest fall of equity (marked at every tick, or every bar's close)
    /// from its running peak: what the trailing drawdown limit watches, so
    /// it can exceed the fall seen at decision bars.
    pub max_drawdown: f64,
}

impl Run {
    fn new(name: &str, kind: &'static str, sim: SimConfig) -> Run {
        Run {
            name: name.to_string(),
            kind,
            sim,
            trades: Vec::new(),
            equity: Vec::new(),
            decisions: Vec::new(),
            breached: false,
            open_at_end: 0,
            records: 0,
            max_drawdown: 0.0,
        }
    }

    /// Every row, with what was decided there if it is a decision row.
    pub fn rows(&self) -> impl Iterator<Item = (&EquityRow, Option<&DecisionRow>)> {
        let mut decisions = self.decisions.iter();
        self.equity
            .iter()
            .map(move |row| (row, row.is_decision().then(|| decisions.next()).flatten()))
    }

    /// The decision rows only, with what was decided.
    pub fn decision_rows(&self) -> impl Iterator<Item = (&EquityRow, &DecisionRow)> {
        self.equity
            .iter()
            .filter(|row| row.is_decision())
            .zip(&self.decisions)
    }

    /// The account marked at `equity`: raises the high-water mark `peak` and
    /// keeps the largest fall from it (every tick or bar, not only at rows).
    fn mark_equity(&mut self, equity: f64, peak: &mut f64) {
        *peak = peak.max(equity);
        self.max_drawdown = self.max_drawdown.max(*peak - equity);
    }

    /// Books one step of the engine: its trades, a breach, the account
    /// (for the drawdown) and the row of the bar it closed, if any.
    fn book(&mut self, step: &Step, peak: &mut f64) -> Result<()> {
        self.mark_equity(step.account.equity, peak);
        self.trades.extend(step.exits().copied());
        if step.closed_out {
            // The step's first exit closed out a session whose market
            // stopped early, at its last bar's end: the row of that close
            // (the last one written) shows the flat account it ended with.
            let exit_ts = step.exits().next().map_or(i64::MAX, |t| t.exit_ts_ns);
            for row in self.equity.iter_mut().rev() {
                if row.ts_ns < exit_ts {
                    break;
                }
                row.equity = step.account.balance;
                row.balance = step.account.balance;
            }
        }
        self.breached |= step.breached;
        match (&step.bar, &step.decision) {
            (Some(_), Some(d)) => self.push_decision(
                EquityRow::of_decision(d, step.account.balance),
                DecisionRow::of(d),
            ),
            (Some(bar), None) => self.equity.push(EquityRow::of_bar(bar)),
            // Only a clock (live) ends a session without a bar closing.
            (None, Some(d)) => {
                return Err(Error::Internal(format!(
                    "a {} decision at {} ns without a bar close in a replay",
                    d.kind.name(),
                    d.ts_ns
                )))
            }
            (None, None) => {}
        }
        Ok(())
    }

    fn push_decision(&mut self, row: EquityRow, decision: DecisionRow) {
        self.equity.push(row);
        self.decisions.push(decision);
    }
}

/// Where a replay's records come from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// Market-data files as nq-eval reads them: ticks tick by tick, bars bar
    /// by bar.
    Files(&'a MarketReader),
    /// Bars in memory, in time order: what nq-train's held-out and
    /// validation replays give, so that they are nq-eval's replay of the
    /// same bars, to the cent.
    Bars(&'a [Bar]),
}

impl<'a> From<&'a MarketReader> for Source<'a> {
    fn from(reader: &'a MarketReader) -> Self {
        Source::Files(reader)
    }
}

impl<'a> From<&'a [Bar]> for Source<'a> {
    fn from(bars: &'a [Bar]) -> Self {
        Source::Bars(bars)
    }
}

/// Replays `data` through an engine over `checkpoint` (its own settings, or
/// `config`), over the sessions in `range`; `progress` hears the records
/// read so far after each chunk. Errors name the checkpoint or the data file
/// at fault.
pub fn replay<'a>(
    name: &str,
    checkpoint: &CheckpointFile,
    config: Option<EngineConfig>,
    data: impl Into<Source<'a>>,
    range: DateRange,
    progress: &mut dyn FnMut(u64),
) -> Result<Run> {
    let data = data.into();
    replay_inner(
        name, "policy", checkpoint, config, data, range, None, progress,
    )
}

/// A baseline over the same data and engine settings as a policy replay:
/// the checkpoint only provides the engine (features, session, simulator);
/// the baseline's rule picks every action. Buy and hold is the exception:
/// RTH whatever the checkpoint's session, see [`Baseline::BuyAndHold`].
pub fn replay_baseline<'a>(
    baseline: Baseline,
    checkpoint: &CheckpointFile,
    config: Option<EngineConfig>,
    data: impl Into<Source<'a>>,
    range: DateRange,
    progress: &mut dyn FnMut(u64),
) -> Result<Run> {
    let data = data.into();
    let config = match baseline {
        Baseline::BuyAndHold => Some(buy_and_hold::engine_config(checkpoint, config)?),
        _ => config,
    };
    let mut rng = Rng::new(baseline.seed());
    let mut choose = |mask: ActionMask, position: i8| baseline.choose(mask, position, &mut rng);
    let mut run = replay_inner(
        baseline.name(),
        "baseline",
        checkpoint,
        config,
        data,
        range,
        Some(&mut choose),
        progress,
    )?;
    for d in &mut run.decisions {
        d.probs = baseline.probabilities(ActionMask::from_bits(d.mask), d.action);
    }
    Ok(run)
}

/// The rules a policy is compared against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// Never trades.
    Flat,
    /// A uniform draw among the allowed actions, seeded.
    Random { seed: u64 },
    /// Each trading day, long one contract from the first decision of the
    /// RTH session (the close of its first bar, 09:31 New York, once the
    /// features are warm) to the session end, with no stop or target and
    /// the policy's slippage, commission and drawdown limit: one round trip
    /// a day, whatever session the checkpoint trades. It runs through the
    /// same engine as the policy (its fills, session end and drawdown), over
    /// RTH; see [`buy_and_hold`].
    BuyAndHold,
}

impl Baseline {
    /// The baselines `nq-eval` reports; the random one with a fixed seed.
    pub const ALL: [Baseline; 3] = [
        Baseline::Flat,
        Baseline::Random { seed: 1 },
        Baseline::BuyAndHold,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Baseline::Flat => "flat",
            Baseline::Random { .. } => "random",
            Baseline::BuyAndHold => "buy_and_hold",
        }
    }

    const fn seed(self) -> u64 {
        match self {
            Baseline::Random { seed } => seed,
            _ => 0,
        }
    }

    fn choose(self, mask: ActionMask, position: i8, rng: &mut Rng) -> Action {
        match self {
            Baseline::Flat => Action::Hold,
            // Its entries carry no bracket, so only the session end (or a
            // breach) ends a position: one round trip a day.
            Baseline::BuyAndHold if position == 0 && mask.allows(Action::Buy) => Action::Buy,
            Baseline::BuyAndHold => Action::Hold,
            Baseline::Random { .. } => {
                let n = u64::from(mask.count().max(1));
                Action::ALL
                    .into_iter()
                    .filter(|a| mask.allows(*a))
                    .nth((rng.next_u64() % n) as usize)
                    .unwrap_or(Action::Hold)
            }
        }
    }

    /// What the rule's choice distribution was, for the equity rows.
    fn probabilities(self, mask: ActionMask, chosen: Action) -> [f32; MAX_ACTIONS] {
        let mut probs = [0.0; MAX_ACTIONS];
        match self {
            Baseline::Random { .. } => {
                let n = mask.count().max(1) as f32;
                for a in Action::ALL.iter().filter(|a| mask.allows(**a)) {
                    probs[a.code() as usize] = 1.0 / n;
                }
            }
            _ => probs[chosen.code() as usize] = 1.0,
        }
        probs
    }
}

// One private worker behind the two public entry points.
#[allow(clippy::too_many_arguments)]
fn replay_inner(
    name: &str,
    kind: &'static str,
    checkpoint: &CheckpointFile,
    config: Option<EngineConfig>,
    data: Source<'_>,
    range: DateRange,
    mut choose: Option<&mut dyn FnMut(ActionMask, i8) -> Action>,
    progress: &mut dyn FnMut(u64),
) -> Result<Run> {
    let mut gate = RangeGate::new(range);
    let mut last_ts = i64::MIN;
    let mut spacing = BarSpacing::default();
    let mut engine = checkpoint.engine(config)?;
    let sim = *engine.simulator().config();
    let mut run = Run::new(name, kind, sim);
    let mut peak = sim.starting_balance;
    let mut on_bars = |bars: &[Bar]| -> Result<()> {
        for bar in bars {
            let replayed = match gate.bar(bar.ts_ns) {
                Gate::Skip => continue,
                Gate::WarmUp => false,
                Gate::Replay { .. } => {
                    last_ts = bar.ts_ns;
                    true
                }
            };
            spacing.observe(bar.ts_ns);
            let step = match (replayed, choose.as_deref_mut()) {
                (false, _) => engine.on_bar_with(bar, &mut hold),
                (true, Some(f)) => engine.on_bar_with(bar, f),
                (true, None) => engine.on_bar(bar),
            };
            if let (true, Ok(step)) = (replayed, step) {
                run.book(&step, &mut peak)?;
            }
        }
        run.records += bars.len() as u64;
        progress(run.records);
        Ok(())
    };
    let files = match data {
        Source::Bars(bars) => {
            on_bars(bars)?;
            None
        }
        Source::Files(files) => {
            match files.kind() {
                DataKind::Bars => files.for_each_bar_chunk(on_bars)?,
                DataKind::Ticks => files.for_each_tick_chunk(|ticks| {
                    for tick in ticks {
                        let replayed = match gate.tick(tick.ts_ns) {
                            Gate::Skip => continue,
                            Gate::WarmUp => false,
                            Gate::Replay { row } => {
                                last_ts = tick.ts_ns;
                                row
                            }
                        };
                        // The reader validated every tick, so a refusal cannot
                        // happen; were it to, skipping it is what live
                        // execution would do.
                        let step = match (replayed, choose.as_deref_mut()) {
                            (false, _) => engine.on_tick_with(tick, &mut hold),
                            (true, Some(f)) => engine.on_tick_with(tick, f),
                            (true, None) => engine.on_tick(tick),
                        };
                        if let (true, Ok(step)) = (replayed, step) {
                            run.book(&step, &mut peak)?;
                        }
                    }
                    run.records += ticks.len() as u64;
                    progress(run.records);
                    Ok(())
                })?,
            }
            Some(files)
        }
    };
    if let Some(files) = files {
        spacing.check(files, sim.bar_seconds, &format!("the checkpoint {name:?}"))?;
    }
    let end = engine.end_of_data(last_ts);
    run.open_at_end = end.exits().next().map_or(0, |t| t.side);
    run.trades.extend(end.exits().copied());
    run.breached |= end.breached || end.account.breached;
    Ok(run)
}

/// Bars of another length than the checkpoint's would be read as if they
/// were its bars: the closest two bars of each file tell that file's bar
/// length. Files are judged one by one, so that a file of other bars cannot
/// hide behind one of the right length.
#[derive(Debug, Clone, Default)]
pub struct BarSpacing {
    /// The start of every bar replayed, in time order: the files' bounds are
    /// known only at [`BarSpacing::check`].
    bar_starts: Vec<i64>,
}

impl BarSpacing {
    pub fn observe(&mut self, ts_ns: i64) {
        self.bar_starts.push(ts_ns);
    }

    /// `whose` names what expects `bar_seconds` bars, for the message. A
    /// file with fewer than two bars replayed cannot be judged.
    pub fn check(&self, data: &MarketReader, bar_seconds: u32, whose: &str) -> Result<()> {
        let bar_ns = i64::from(bar_seconds) * 1_000_000_000;
        let files = data.file_starts();
        for (i, &(path, first)) in files.iter().enumerate() {
            let Some(first) = first else { continue };
            let next = files[i + 1..].iter().find_map(|&(_, f)| f);
            let from = self.bar_starts.partition_point(|&t| t < first);
            let to = next.map_or(self.bar_starts.len(), |n| {
                self.bar_starts.partition_point(|&t| t < n)
            });
            let closest = self.bar_starts[from..to.max(from)]
                .windows(2)
                .map(|w| w[1] - w[0])
                .min();
            if let Some(gap) = closest.filter(|&gap| gap != bar_ns) {
                return Err(Error::BadFile {
                    file: path.to_path_buf(),
                    column: Some("ts".into()),
                    problem: format!(
                        "bar length mismatch: this file's bars are {} s apart at the \
                         closest, {whose} uses {bar_seconds} s bars",
                        gap as f64 / 1e9,
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_baseline_draws_every_allowed_action_and_nothing_else() {
        let mask = ActionMask::HOLD_ONLY.with(Action::Sell);
        let mut rng = Rng::new(7);
        let mut seen = [0usize; MAX_ACTIONS];
        for _ in 0..1000 {
            let a = Baseline::Random { seed: 7 }.choose(mask, 0, &mut rng);
            assert!(mask.allows(a), "{a:?}");
            seen[a.code() as usize] += 1;
        }
        assert!(seen[0] > 400 && seen[Action::Sell.code() as usize] > 400);
        let probs = Baseline::Random { seed: 7 }.probabilities(mask, Action::Hold);
        assert_eq!(&probs[..3], &[0.5, 0.0, 0.5]);
    }

    /// Every bar close of the data has a row, held per run: it stays small,
    /// the decision details being apart.
    #[test]
    fn a_bar_row_stays_small() {
        assert!(std::mem::size_of::<EquityRow>() <= 48);
    }

    #[test]
    fn the_kind_column_names_the_runtimes_bar_kinds() {
        use nq_runtime::engine::DecisionKind;
        assert_eq!(RowKind::OutsideSession.name(), "outside_session");
        assert_eq!(RowKind::Warmup.name(), "warmup");
        assert_eq!(
            RowKind::Decided(DecisionKind::SessionEnd).name(),
            "session_end"
        );
    }
}
