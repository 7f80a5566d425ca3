//! The metrics a trader reads at a glance, computed from a [`Run`]'s trades
//! and equity rows (never re-simulated).

use nq_formats::Action;
use serde::Serialize;

use super::significance::Significance;
use super::Run;
use crate::time::NewYorkClock;

/// Sharpe and Sortino are annualised by `sqrt(ANNUALISATION_DAYS)`: trading
/// days per year, one session a day.
pub const ANNUALISATION_DAYS: f64 = 252.0;

/// One `summary.parquet` row. Money in dollars; ratios are `None` where
/// undefined (no losing trade, fewer than two days, no variance).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub policy: String,
    pub kind: String,
    pub trades: i64,
    /// Winning trades (net P&L > 0) over all trades; 0 without trades.
    pub win_rate: f64,
    /// Sum of the closed trades' net P&L.
    pub net_pnl_usd: f64,
    pub gross_pnl_usd: f64,
    pub commission_usd: f64,
    /// Largest fall of equity from its running peak (starting balance
    /// included), at ticks or decision bars, whichever saw more.
    pub max_drawdown_usd: f64,
    pub profit_factor: Option<f64>,
    pub avg_win_usd: Option<f64>,
    /// Negative: the mean net P&L of losing trades.
    pub avg_loss_usd: Option<f64>,
    pub sharpe_daily: Option<f64>,
    pub sortino_daily: Option<f64>,
    /// Fraction of decision bars with a position open.
    pub exposure: f64,
    /// Sessions (CME trading dates) with at least one bar row, decision or
    /// not: the days of the daily P&L.
    pub days: i64,
    pub drawdown_breach: bool,
    /// Decisions per action, indexed by action code.
    pub actions: [i64; Action::ALL.len()],
    /// The best policy by the comparison's metric (see [`Comparison`]);
    /// never a baseline.
    pub best: bool,
    /// Whether the checkpoint saw these days in training or validation:
    /// `IN-SAMPLE`, `OUT-OF-SAMPLE`, `MIXED` or `UNKNOWN`; empty for a
    /// baseline.
    pub sample: String,
    /// Could it be luck: intervals, the random-action null, the deflated
    /// Sharpe ratio and the verdict (policies only).
    pub significance: Option<Significance>,
}

/// What `summary.json` and `nq-eval --json` hold: the metric the policies
/// were ranked by, the best one, and every summary (policies best first,
/// then the baselines), each marked `best` or not as in `summary.parquet`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub sort_by: String,
    pub annualisation: &'static str,
    /// The first policy's name; empty when there is none.
    pub best: String,
    pub summaries: Vec<Summary>,
}

impl Comparison {
    /// `summaries` already in report order (policies ranked by `sort_by`,
    /// best first); marks the first policy best.
    pub fn new(sort_by: &str, mut summaries: Vec<Summary>) -> Comparison {
        for s in &mut summaries {
            s.best = false;
        }
        let best = summaries.iter_mut().find(|s| s.kind == "policy");
        let best = best.map_or_else(String::new, |s| {
            s.best = true;
            s.policy.clone()
        });
        Comparison {
            sort_by: sort_by.to_string(),
            annualisation: "sqrt(252) over daily (per-session) P&L",
            best,
            summaries,
        }
    }
}

impl Summary {
    pub fn of(run: &Run) -> Summary {
        let trades = &run.trades;
        let net: Vec<f64> = trades.iter().map(|t| t.net_pnl).collect();
        let wins: Vec<f64> = net.iter().copied().filter(|p| *p > 0.0).collect();
        let losses: Vec<f64> = net.iter().copied().filter(|p| *p <= 0.0).collect();
        let gross_win = total(wins.iter().copied());
        let gross_loss = -total(losses.iter().copied());
        let daily = daily_pnl(run);
        let mut actions = [0i64; Action::ALL.len()];
        for d in &run.decisions {
            actions[d.action.code() as usize] += 1;
        }
        // Over decision bars: the share of the bars traded spent in a position.
        let in_position = run
            .decision_rows()
            .filter(|(row, _)| row.position != 0)
            .count();
        Summary {
            policy: run.name.clone(),
            kind: run.kind.to_string(),
            trades: trades.len() as i64,
            win_rate: ratio(wins.len() as f64, trades.len() as f64).unwrap_or(0.0),
            net_pnl_usd: total(net.iter().copied()),
            gross_pnl_usd: total(trades.iter().map(|t| t.gross_pnl)),
            commission_usd: total(trades.iter().map(|t| t.commission)),
            max_drawdown_usd: run
                .max_drawdown
                .max(max_drawdown(run.sim.starting_balance, run)),
            profit_factor: (gross_loss > 0.0).then(|| gross_win / gross_loss),
            avg_win_usd: mean(&wins),
            avg_loss_usd: mean(&losses),
            sharpe_daily: sharpe(&daily),
            sortino_daily: sortino(&daily),
            exposure: ratio(in_position as f64, run.decisions.len() as f64).unwrap_or(0.0),
            days: daily.len() as i64,
            drawdown_breach: run.breached,
            actions,
            best: false,
            sample: String::new(),
            significance: None,
        }
    }

    /// A metric by its column name (for sorting comparisons); `None` for an
    /// unknown name or an undefined value.
    pub fn metric(&self, name: &str) -> Option<f64> {
        Some(match name {
            "trades" => self.trades as f64,
            "win_rate" => self.win_rate,
            "net_pnl_usd" | "net_pnl" => self.net_pnl_usd,
            "gross_pnl_usd" | "gross_pnl" => self.gross_pnl_usd,
            "commission_usd" => self.commission_usd,
            // Less drawdown is better: negated so that larger always wins.
            "max_drawdown_usd" | "max_drawdown" => -self.max_drawdown_usd,
            "profit_factor" => self.profit_factor?,
            "avg_win_usd" => self.avg_win_usd?,
            "avg_loss_usd" => self.avg_loss_usd?,
            "sharpe_daily" | "sharpe" => self.sharpe_daily?,
            "sortino_daily" | "sortino" => self.sortino_daily?,
            "exposure" => self.exposure,
            _ => return None,
        })
    }
}

/// The metric names [`Summary::metric`] knows (for `--sort-by`).
pub const SORT_METRICS: &[&str] = &[
    "net_pnl",
    "gross_pnl",
    "sharpe",
    "sortino",
    "profit_factor",
    "win_rate",
    "max_drawdown",
    "trades",
    "exposure",
    "avg_win_usd",
    "avg_loss_usd",
    "commission_usd",
];

/// Equity change per session (CME trading date with at least one bar row,
/// whatever its kind): its last equity minus the previous session's (the
/// starting balance before the first). Every bar has a row in every run, so
/// all runs over the same data have the same days, including the ones a
/// baseline trades while the policy's features are still warming up. The
/// last equity is read over every bar row, not only the decision rows: with
/// ticks the session-end flatten fills on the tick after the last decision,
/// so only the bar rows after it carry its price and commission into the day
/// it belongs to.
pub(crate) fn daily_pnl(run: &Run) -> Vec<f64> {
    daily_pnl_by_date(run).into_iter().map(|(_, p)| p).collect()
}

/// [`daily_pnl`] with each day's CME trading date.
pub fn daily_pnl_by_date(run: &Run) -> Vec<(chrono::NaiveDate, f64)> {
    let mut clock = NewYorkClock::new();
    let mut out = Vec::new();
    let mut previous_close = run.sim.starting_balance;
    // The trading date being read and its last equity.
    let mut current: Option<(chrono::NaiveDate, f64)> = None;
    for row in &run.equity {
        let day = clock.trading_date(row.ts_ns);
        match current {
            Some((d, last)) if d != day => {
                out.push((d, last - previous_close));
                previous_close = last;
                current = Some((day, row.equity));
            }
            Some((_, ref mut last)) => *last = row.equity,
            None => current = Some((day, row.equity)),
        }
    }
    if let Some((d, last)) = current {
        out.push((d, last - previous_close));
    }
    out
}

fn max_drawdown(start: f64, run: &Run) -> f64 {
    let mut peak = start;
    let mut worst = 0.0f64;
    for (row, _) in run.decision_rows() {
        peak = peak.max(row.equity);
        worst = worst.max(peak - row.equity);
    }
    worst
}

/// `Iterator::sum` of nothing is -0.0, which prints as "-0.00".
fn total(xs: impl Iterator<Item = f64>) -> f64 {
    xs.fold(0.0, |a, b| a + b)
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

fn mean(xs: &[f64]) -> Option<f64> {
    ratio(total(xs.iter().copied()), xs.len() as f64)
}

fn sharpe(daily: &[f64]) -> Option<f64> {
    if daily.len() < 2 {
        return None;
    }
    let m = mean(daily)?;
    let var = daily.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (daily.len() - 1) as f64;
    let sd = var.sqrt();
    (sd > 0.0).then(|| m / sd * ANNUALISATION_DAYS.sqrt())
}

fn sortino(daily: &[f64]) -> Option<f64> {
    if daily.len() < 2 {
        return None;
    }
    let m = mean(daily)?;
    let downside =
        (daily.iter().map(|x| x.min(0.0).powi(2)).sum::<f64>() / daily.len() as f64).sqrt();
    (downside > 0.0).then(|| m / downside * ANNUALISATION_DAYS.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{DecisionRow, EquityRow, RowKind};
    use nq_formats::{Instrument, SimConfig};
    use nq_runtime::engine::DecisionKind;
    use nq_runtime::sim::{ExitReason, TradeRecord};

    fn trade(net: f64) -> TradeRecord {
        TradeRecord {
            side: 1,
            contracts: 1,
            entry_ts_ns: 0,
            exit_ts_ns: 1,
            entry_price: 100.0,
            exit_price: 101.0,
            gross_pnl: net + 4.0,
            commission: 4.0,
            net_pnl: net,
            exit_reason: ExitReason::Signal,
            bars_held: 1,
            mae: 0.0,
            mfe: 0.0,
        }
    }

    /// A run whose rows are HOLD decisions at `(ts, equity, position)`.
    fn run_of(kind: &'static str, trades: Vec<TradeRecord>, rows: &[(i64, f64, i8)]) -> Run {
        let mut run = Run::new("p", kind, SimConfig::default_for(Instrument::Nq));
        run.trades = trades;
        for &(ts_ns, equity, position) in rows {
            let row = EquityRow {
                ts_ns,
                equity,
                balance: equity,
                close: 18_000.0,
                atr: 5.0,
                position,
                kind: RowKind::Decided(DecisionKind::Policy),
            };
            let decision = DecisionRow {
                action: Action::Hold,
                probs: [0.0; 6],
                n_actions: 3,
                mask: 1,
                target_position: position,
                stop_price: None,
                target_price: None,
            };
            run.push_decision(row, decision);
        }
        run
    }

    /// A row without a decision, at `equity`.
    fn bar_row(ts_ns: i64, equity: f64, kind: RowKind) -> EquityRow {
        EquityRow {
            ts_ns,
            equity,
            balance: equity,
            close: 18_000.0,
            atr: 5.0,
            position: 0,
            kind,
        }
    }

    const DAY: i64 = 86_400_000_000_000;
    // 2024-01-02 15:00 UTC, inside a New York session.
    const T0: i64 = 1_704_207_600_000_000_000;

    #[test]
    fn metrics_from_trades_and_equity() {
        let start = SimConfig::default_for(Instrument::Nq).starting_balance;
        let mut run = run_of(
            "policy",
            vec![trade(100.0), trade(-50.0), trade(30.0)],
            &[
                (T0, start + 100.0, 1),
                (T0 + 60, start + 20.0, 0),
                (T0 + DAY, start - 30.0, 0),
                (T0 + 2 * DAY, start + 80.0, 1),
            ],
        );
        // Rows without a decision count where a session's last equity is
        // read: a warm-up row before the first decision does not, a row
        // after the session's last decision does (as when a session-end
        // flatten fills on the next tick and pays $4 commission), and a day
        // with bar rows but no decision is a (here flat) day too.
        run.equity
            .insert(0, bar_row(T0 - 60, start - 900.0, RowKind::Warmup));
        run.equity
            .insert(3, bar_row(T0 + 120, start + 16.0, RowKind::OutsideSession));
        run.equity
            .push(bar_row(T0 + 3 * DAY, start + 80.0, RowKind::OutsideSession));
        let decided: Vec<f64> = run.decision_rows().map(|(r, _)| r.equity).collect();
        assert_eq!(decided.len(), 4);
        assert_eq!(run.rows().filter(|(_, d)| d.is_some()).count(), 4);
        let s = Summary::of(&run);
        assert_eq!(s.trades, 3);
        assert!((s.win_rate - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.net_pnl_usd - 80.0).abs() < 1e-9);
        assert!((s.gross_pnl_usd - 92.0).abs() < 1e-9);
        assert!((s.commission_usd - 12.0).abs() < 1e-9);
        assert!((s.profit_factor.unwrap() - 130.0 / 50.0).abs() < 1e-12);
        assert!((s.avg_win_usd.unwrap() - 65.0).abs() < 1e-12);
        assert!((s.avg_loss_usd.unwrap() + 50.0).abs() < 1e-12);
        // Peak start+100, trough start-30.
        assert!((s.max_drawdown_usd - 130.0).abs() < 1e-9);
        assert_eq!(s.days, 4);
        assert!((s.exposure - 0.5).abs() < 1e-12);
        // Daily P&L 16, -46, 110, then the flat day without a decision.
        let daily = [16.0, -46.0, 110.0, 0.0];
        assert_eq!(daily_pnl(&run), daily);
        let m = 80.0 / 4.0;
        let sd = (daily.iter().map(|x: &f64| (x - m).powi(2)).sum::<f64>() / 3.0).sqrt();
        assert!((s.sharpe_daily.unwrap() - m / sd * 252f64.sqrt()).abs() < 1e-9);
        let dd = (46.0f64 * 46.0 / 4.0).sqrt();
        assert!((s.sortino_daily.unwrap() - m / dd * 252f64.sqrt()).abs() < 1e-9);
        assert_eq!(s.actions[0], 4);
    }

    /// A baseline trading on a day the policy's engine still warms up (no
    /// decision row that day) keeps that day's P&L in that day.
    #[test]
    fn a_day_of_warmup_rows_is_a_day_of_its_own() {
        let start = SimConfig::default_for(Instrument::Nq).starting_balance;
        let mut run = run_of("baseline", vec![], &[(T0 + DAY, start + 70.0, 0)]);
        for (i, equity) in [start + 10.0, start + 40.0, start + 25.0]
            .into_iter()
            .enumerate()
        {
            let row = bar_row(T0 + 60 * i as i64, equity, RowKind::Warmup);
            run.equity.insert(i, row);
        }
        assert_eq!(daily_pnl(&run), [25.0, 45.0]);
        assert_eq!(Summary::of(&run).days, 2);
    }

    #[test]
    fn drawdown_between_decisions_counts() {
        let sim = SimConfig::default_for(Instrument::Nq);
        let mut run = run_of("policy", vec![], &[(T0, sim.starting_balance - 10.0, 0)]);
        run.breached = true;
        run.max_drawdown = 700.0;
        assert_eq!(Summary::of(&run).max_drawdown_usd, 700.0);
        run.max_drawdown = 0.0;
        assert_eq!(Summary::of(&run).max_drawdown_usd, 10.0);
    }

    #[test]
    fn undefined_ratios_are_none() {
        let sim = SimConfig::default_for(Instrument::Nq);
        let run = run_of("baseline", vec![], &[(T0, sim.starting_balance, 0)]);
        let s = Summary::of(&run);
        assert_eq!(s.trades, 0);
        assert_eq!(s.win_rate, 0.0);
        assert_eq!(s.profit_factor, None);
        assert_eq!(s.sharpe_daily, None);
        assert_eq!(s.max_drawdown_usd, 0.0);
    }
}
