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

mod buy_and_hold;
mod overrides;
pub mod picture;
pub mod report;
mod summary;

pub use overrides::SimOverrides;
pub use summary::{Comparison, Summary, ANNUALISATION_DAYS, SORT_METRICS};

use nq_formats::{Action, SimConfig};
use nq_runtime::engine::{Decision, DecisionKind, Engine, EngineConfig};
use nq_runtime::features::BarInfo;
use nq_runtime::policy::{Rng, MAX_ACTIONS};
use nq_runtime::sim::{Simulator, TradeRecord};
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
enum Feed {
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

    fn tick(&mut self, ts_ns: i64) -> Feed {
        match self.bar(ts_ns) {
            Feed::WarmUp => {
                self.warming_up = true;
                Feed::WarmUp
            }
            Feed::Replay { .. } => Feed::Replay {
                row: !std::mem::take(&mut self.warming_up),
            },
            Feed::Skip => Feed::Skip,
        }
    }

    /// A bar closes itself, so no bar straddles the range's start.
    fn bar(&mut self, ts_ns: i64) -> Feed {
        let range = &self.range;
        if range.from.is_none() && range.to.is_none() {
            return Feed::Replay { row: true };
        }
        let day = self.clock.trading_date(ts_ns);
        if range.from.is_some_and(|f| day < f) {
            Feed::WarmUp
        } else if range.to.is_some_and(|t| day > t) {
            Feed::Skip
        } else {
            Feed::Replay { row: true }
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

/// Why a row is there: the `kind` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    /// The engine decided at this close: the policy's (or baseline's)
    /// choice, or one forced by the session's end or a drawdown breach.
    Decision(DecisionKind),
    /// No decision: the feature window is not full yet.
    Warmup,
    /// No decision: the bar lies outside the session traded (and nothing
    /// was held that its end would have closed).
    OutsideSession,
}

impl RowKind {
    pub const fn name(self) -> &'static str {
        match self {
            RowKind::Decision(kind) => kind.name(),
            RowKind::Warmup => "warmup",
            RowKind::OutsideSession => "outside_session",
        }
    }

    /// Why the engine made no decision at the bar it just closed; `None`
    /// when it should have made one.
    fn without_decision(bar: &BarInfo) -> Option<RowKind> {
        if !bar.ready {
            Some(RowKind::Warmup)
        } else if !bar.in_session {
            Some(RowKind::OutsideSession)
        } else {
            None
        }
    }
}

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
    /// The row of `d`, with the account balance `balance`.
    fn of_decision(d: &Decision, balance: f64) -> EquityRow {
        EquityRow {
            ts_ns: d.ts_ns,
            equity: d.equity,
            balance,
            close: d.close,
            atr: d.atr,
            position: d.position,
            kind: RowKind::Decision(d.kind),
        }
    }

    /// The row of the bar `engine` has just closed without deciding, with
    /// the account of `sim` (the engine's own, or a baseline's) marked at
    /// the bar's close.
    fn without_decision(engine: &Engine<'_>, sim: &Simulator) -> Result<EquityRow> {
        let features = engine.features();
        let bar = features.last_bar();
        let kind = RowKind::without_decision(bar).ok_or_else(|| {
            Error::Internal(format!(
                "the engine made no decision at the bar of {} ns, in session and warmed up",
                bar.ts_ns
            ))
        })?;
        Ok(EquityRow {
            ts_ns: bar.ts_ns.saturating_add(features.config().bar_ns()),
            equity: sim.equity(bar.close),
            balance: sim.balance(),
            close: bar.close,
            atr: bar.atr,
            position: sim.position_side(),
            kind,
        })
    }

    pub fn is_decision(&self) -> bool {
        matches!(self.kind, RowKind::Decision(_))
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

/// Whether the engine call since `bars_before` (its
/// `features().bars_seen()` then) closed a bar: how every run, policy or
/// baseline, ticks or bars, tells where its rows go.
fn closed_a_bar(engine: &Engine<'_>, bars_before: u64) -> bool {
    engine.features().bars_seen() > bars_before
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

    /// A position was closed at `exit_ts_ns`, a time the rows already
    /// written reach: a session whose market stopped early (RTH-only data,
    /// early closes) is closed out at its last price only when a later
    /// record shows it ended. The rows from the exit on marked it open; they
    /// get the flat account, `balance` after the exit, so each day's last
    /// row agrees with the trades closed that day.
    fn settle_backdated_exit(&mut self, exit_ts_ns: i64, balance: f64) {
        for row in self.equity.iter_mut().rev() {
            if row.ts_ns < exit_ts_ns {
                break;
            }
            row.equity = balance;
            row.balance = balance;
        }
    }

    fn push_decision(&mut self, row: EquityRow, decision: DecisionRow) {
        self.equity.push(row);
        self.decisions.push(decision);
    }
}

/// Replays `data` through an engine over `checkpoint` (its own settings, or
/// `config`), over the sessions in `range`; `progress` hears the records
/// read so far after each chunk. Errors name the checkpoint or the data file
/// at fault.
pub fn replay(
    name: &str,
    checkpoint: &CheckpointFile,
    config: Option<EngineConfig>,
    data: &MarketReader,
    range: DateRange,
    progress: &mut dyn FnMut(u64),
) -> Result<Run> {
    replay_inner(
        name, "policy", checkpoint, config, data, range, None, progress,
    )
}

/// A baseline over the same data and engine settings as a policy replay:
/// the checkpoint only provides the engine (features, session, simulator);
/// the baseline's rule picks every action. Buy and hold is the exception:
/// RTH whatever the checkpoint's session, see [`Baseline::BuyAndHold`].
pub fn replay_baseline(
    baseline: Baseline,
    checkpoint: &CheckpointFile,
    config: Option<EngineConfig>,
    data: &MarketReader,
    range: DateRange,
    progress: &mut dyn FnMut(u64),
) -> Result<Run> {
    if baseline == Baseline::BuyAndHold {
        return buy_and_hold::replay(baseline.name(), checkpoint, config, data, range, progress);
    }
    let mut rng = Rng::new(baseline.seed());
    let mut choose = |mask: ActionMask, _position: i8| baseline.choose(mask, &mut rng);
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
    /// Each trading day, long one contract from the first RTH trade (09:30
    /// New York; the first RTH bar's open with bars) to the last before
    /// 16:00 (the last RTH bar's close), with no stop or target and the
    /// policy's slippage and commission: one round trip a day, whatever
    /// session the checkpoint trades. Its rows are at the same bar closes
    /// as the other runs', its decisions HOLDs with no bracket (RTH bars
    /// only: outside RTH it has no decision).
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

    fn choose(self, mask: ActionMask, rng: &mut Rng) -> Action {
        match self {
            // Buy and hold trades outside the engine's decisions (its own replay).
            Baseline::Flat | Baseline::BuyAndHold => Action::Hold,
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
    data: &MarketReader,
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
    match data.kind() {
        DataKind::Ticks => data.for_each_tick_chunk(|ticks| {
            for tick in ticks {
                match gate.tick(tick.ts_ns) {
                    Feed::Skip => continue,
                    Feed::WarmUp => {
                        let _ = engine.on_tick_with(tick, &mut hold);
                        continue;
                    }
                    Feed::Replay { row } => {
                        last_ts = tick.ts_ns;
                        if !row {
                            let _ = engine.on_tick_with(tick, &mut hold);
                            continue;
                        }
                    }
                }
                let bars_before = engine.features().bars_seen();
                // The reader validated every tick, so a refusal cannot happen;
                // were it to, skipping it is what live execution would do.
                let decision = match choose.as_deref_mut() {
                    Some(f) => engine.on_tick_with(tick, f),
                    None => engine.on_tick(tick),
                };
                let decision = decision.ok().flatten();
                collect(
                    &engine,
                    tick.ts_ns,
                    bars_before,
                    decision,
                    &mut run,
                    &mut peak,
                )?;
            }
            run.records += ticks.len() as u64;
            progress(run.records);
            Ok(())
        })?,
        DataKind::Bars => data.for_each_bar_chunk(|bars| {
            for bar in bars {
                let feed = gate.bar(bar.ts_ns);
                if feed == Feed::Skip {
                    continue;
                }
                spacing.observe(bar.ts_ns);
                if feed == Feed::WarmUp {
                    engine.on_bar_with(bar, &mut hold);
                    continue;
                }
                last_ts = bar.ts_ns;
                let bars_before = engine.features().bars_seen();
                let decision = match choose.as_deref_mut() {
                    Some(f) => engine.on_bar_with(bar, f),
                    None => engine.on_bar(bar),
                };
                collect(
                    &engine,
                    bar.ts_ns,
                    bars_before,
                    decision,
                    &mut run,
                    &mut peak,
                )?;
            }
            run.records += bars.len() as u64;
            progress(run.records);
            Ok(())
        })?,
    }
    spacing.check(data, sim.bar_seconds, &format!("the checkpoint {name:?}"))?;
    run.open_at_end = engine.simulator().position_side();
    if let Some(trade) = engine.end_of_data(last_ts) {
        run.trades.push(trade);
    }
    run.breached |= engine.simulator().is_breached();
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

/// Books what the engine call for the record at `record_ts_ns` (since
/// `bars_before`) did: the exit and breach it caused, and the row of the bar
/// it closed, if any.
fn collect(
    engine: &Engine<'_>,
    record_ts_ns: i64,
    bars_before: u64,
    decision: Option<Decision>,
    run: &mut Run,
    peak: &mut f64,
) -> Result<()> {
    let sim = engine.simulator();
    run.mark_equity(sim.equity_at_last(), peak);
    let events = engine.events();
    if let Some(trade) = events.exit {
        run.trades.push(trade);
        // Every other exit fills at this record. One dated before it is the
        // close-out of a session that ended before this record came; it is
        // the first thing the call does, and nothing fills after it.
        if trade.exit_ts_ns < record_ts_ns && sim.position_side() == 0 {
            run.settle_backdated_exit(trade.exit_ts_ns, sim.balance());
        }
    }
    run.breached |= events.breached;
    match decision {
        Some(d) => run.push_decision(
            EquityRow::of_decision(&d, sim.balance()),
            DecisionRow::of(&d),
        ),
        // No decision means nothing was held or pending at the close, so the
        // closing tick changed nothing in the account: it is as at the close.
        None if closed_a_bar(engine, bars_before) => {
            run.equity.push(EquityRow::without_decision(engine, sim)?)
        }
        None => {}
    }
    Ok(())
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
            let a = Baseline::Random { seed: 7 }.choose(mask, &mut rng);
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
    fn a_bar_without_decision_says_why() {
        let bar = |ready, in_session| BarInfo {
            ready,
            in_session,
            ..BarInfo::default()
        };
        assert_eq!(
            RowKind::without_decision(&bar(false, true)),
            Some(RowKind::Warmup)
        );
        assert_eq!(
            RowKind::without_decision(&bar(false, false)),
            Some(RowKind::Warmup)
        );
        assert_eq!(
            RowKind::without_decision(&bar(true, false)),
            Some(RowKind::OutsideSession)
        );
        assert_eq!(RowKind::without_decision(&bar(true, true)), None);
        assert_eq!(RowKind::OutsideSession.name(), "outside_session");
        assert_eq!(
            RowKind::Decision(DecisionKind::SessionEnd).name(),
            "session_end"
        );
    }
}
