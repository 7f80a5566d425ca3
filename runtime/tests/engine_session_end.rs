//! No position is held overnight, whatever hours the data covers (SPEC 4).
//!
//! The real NQ bars of November 2023 hold both ways a session can end
//! without its 15:59 bar: Thanksgiving (Nov 23, trading stops at 13:00) and
//! the day after (Nov 24, 13:15). Cut to RTH only, as many vendors sell
//! tick data, every session also has no print between its end and the next
//! morning. A rule that buys whenever flat is always in a position, so every
//! session end has something to close. Session days are worked out here
//! from New York time on its own (the whole file is EST, UTC-5), not with
//! the runtime's calendar. A property test then throws random streams at
//! the engine: prints with gaps from seconds to a day, clock calls between
//! them, and random valid actions.

mod real_data;

#[path = "policy_common/mod.rs"]
mod policy_common;

use nq_formats::checkpoint::Activation;
use nq_formats::SessionHours;
use nq_formats::{Action, Bar, Side, Tick};
use nq_runtime::calendar::{new_york_to_utc, SessionCalendar};
use nq_runtime::engine::{DecisionKind, Engine, EngineConfig};
use nq_runtime::policy::{Checkpoint, Policy};
use nq_runtime::sim::{ExitReason, PendingOrder, TradeRecord};
use nq_runtime::ActionMask;
use policy_common::Buffer;
use proptest::prelude::*;

const MINUTE_NS: i64 = 60_000_000_000;
/// New York is UTC-5 from 2023-11-05 06:00 UTC until 2024-03-10 07:00 UTC.
const EST_FROM_NS: i64 = 1_699_164_000_000_000_000;
const EST_UNTIL_NS: i64 = 1_710_054_000_000_000_000;
const TICK: f64 = 0.25;

fn ny_minutes(ts_ns: i64) -> i64 {
    assert!(
        (EST_FROM_NS..EST_UNTIL_NS).contains(&ts_ns),
        "{ts_ns} outside the EST months this test assumes"
    );
    (ts_ns - 5 * 60 * MINUTE_NS).div_euclid(MINUTE_NS)
}

/// The New York date, as days since 1970-01-01.
fn ny_day(ts_ns: i64) -> i64 {
    ny_minutes(ts_ns).div_euclid(24 * 60)
}

fn in_rth(ts_ns: i64) -> bool {
    (570..960).contains(&ny_minutes(ts_ns).rem_euclid(24 * 60))
}

fn rth_bars() -> Vec<Bar> {
    real_data::nq_1min_bars()
        .into_iter()
        .filter(|b| in_rth(b.ts_ns))
        .collect()
}

/// Each bar as four prints inside its minute (open, high, low, close).
fn ticks_of(bars: &[Bar]) -> Vec<Tick> {
    bars.iter()
        .flat_map(|b| {
            [b.open, b.high, b.low, b.close]
                .into_iter()
                .enumerate()
                .map(|(k, price)| Tick {
                    ts_ns: b.ts_ns + k as i64 * 10_000_000_000,
                    price,
                    size: 1.0,
                    side: Side::None,
                })
        })
        .collect()
}

fn always_long(mask: ActionMask, position: i8) -> Action {
    if position == 0 && mask.allows(Action::Buy) {
        Action::Buy
    } else {
        Action::Hold
    }
}

fn checkpoint() -> Buffer {
    Buffer::new(
        &policy_common::valid_file(1, &[32, 32], Activation::Tanh, 5),
        0,
    )
}

/// No drawdown limit, so that the rule trades through every session.
fn engine(buffer: &Buffer) -> Engine<'_> {
    let policy = Policy::from_checkpoint(&Checkpoint::parse(buffer.bytes()).unwrap()).unwrap();
    let mut config = EngineConfig::from_policy(&policy);
    config.sim.max_drawdown = 0.0;
    Engine::new(policy, config).unwrap()
}

/// The last bar of each New York day in `bars`.
fn last_bar_of_each_day(bars: &[Bar]) -> Vec<Bar> {
    bars.windows(2)
        .filter(|w| ny_day(w[0].ts_ns) != ny_day(w[1].ts_ns))
        .map(|w| w[0])
        .chain(bars.last().copied())
        .collect()
}

/// Checks every trade against the days' last bars: none spans two days;
/// each that ends a session closes at its last bar's close, one tick of
/// slippage against the long, at that bar's end. Returns how many did.
fn assert_flat_overnight(trades: &[TradeRecord], last_bars: &[Bar]) -> usize {
    let mut session_ends = 0;
    for t in trades {
        assert_eq!(t.side, 1, "the rule only buys");
        assert_eq!(
            ny_day(t.entry_ts_ns),
            ny_day(t.exit_ts_ns),
            "held overnight: {t:?}"
        );
        if t.exit_reason != ExitReason::SessionEnd {
            assert!(in_rth(t.exit_ts_ns), "exit outside the session: {t:?}");
            continue;
        }
        let last = last_bars
            .iter()
            .find(|b| ny_day(b.ts_ns) == ny_day(t.exit_ts_ns))
            .unwrap_or_else(|| panic!("no last bar on the day of {t:?}"));
        assert_eq!(t.exit_ts_ns, last.ts_ns + MINUTE_NS, "{t:?}");
        assert_eq!(t.exit_price, last.close - TICK, "{t:?}");
        session_ends += 1;
    }
    session_ends
}

/// The days of `last_bars` whose last bar ends at `hh:mm` New York time.
fn days_ending_at(last_bars: &[Bar], hh: i64, mm: i64) -> usize {
    last_bars
        .iter()
        .filter(|b| (ny_minutes(b.ts_ns) + 1).rem_euclid(24 * 60) == hh * 60 + mm)
        .count()
}

#[test]
fn rth_only_ticks_close_each_session_at_its_last_price() {
    let bars = rth_bars();
    let last_bars = last_bar_of_each_day(&bars);
    assert_eq!(last_bars.len(), 11, "11 sessions");
    assert_eq!(days_ending_at(&last_bars, 16, 0), 9);
    assert_eq!(days_ending_at(&last_bars, 13, 0), 1, "Thanksgiving");
    assert_eq!(days_ending_at(&last_bars, 13, 15), 1, "the day after");

    let buffer = checkpoint();
    let mut engine = engine(&buffer);
    let mut trades = Vec::new();
    let mut open_at_day_end = 0;
    let ticks = ticks_of(&bars);
    for (i, tick) in ticks.iter().enumerate() {
        if i > 0 && ny_day(tick.ts_ns) != ny_day(ticks[i - 1].ts_ns) {
            open_at_day_end += usize::from(engine.simulator().position_side() != 0);
        }
        let step = engine
            .on_tick_with(tick, &mut always_long)
            .expect("real prices");
        trades.extend(step.exits().copied());
    }
    assert!(open_at_day_end >= 8, "the rule holds at most session ends");
    assert_eq!(
        assert_flat_overnight(&trades, &last_bars),
        open_at_day_end,
        "each position open at a day's last print is closed that day"
    );
}

#[test]
fn rth_only_bars_that_stop_early_close_at_the_last_bar() {
    let bars = rth_bars();
    let last_bars = last_bar_of_each_day(&bars);
    let buffer = checkpoint();
    let mut engine = engine(&buffer);
    let mut trades = Vec::new();
    for bar in &bars {
        let step = engine.on_bar_with(bar, &mut always_long).unwrap();
        trades.extend(step.exits().copied());
    }
    let session_ends = assert_flat_overnight(&trades, &last_bars);
    let early = trades
        .iter()
        .filter(|t| t.exit_reason == ExitReason::SessionEnd)
        .filter(|t| (ny_minutes(t.exit_ts_ns)).rem_euclid(24 * 60) < 16 * 60)
        .count();
    assert_eq!(early, 2, "Thanksgiving and the day after end early");
    assert!(session_ends >= 9, "{session_ends} session ends");
}

/// With Globex hours the usual session end is unchanged: the flatten fills
/// on the first print at or after 16:00. Only the two early closes, whose
/// next print comes hours later, close at their last RTH price.
#[test]
fn globex_ticks_fill_the_flatten_on_the_next_print_unless_trading_stopped() {
    let bars = real_data::nq_1min_bars();
    let ticks = ticks_of(&bars);
    let last_rth_bars = last_bar_of_each_day(&rth_bars());
    let buffer = checkpoint();
    let mut engine = engine(&buffer);
    let (mut next_print, mut at_last_price) = (0, 0);
    for (i, tick) in ticks.iter().enumerate() {
        let step = engine
            .on_tick_with(tick, &mut always_long)
            .expect("real prices");
        let Some(&t) = step.exits().next() else {
            continue;
        };
        assert_eq!(ny_day(t.entry_ts_ns), ny_day(t.exit_ts_ns), "{t:?}");
        if t.exit_reason != ExitReason::SessionEnd {
            continue;
        }
        let minute = ny_minutes(t.exit_ts_ns).rem_euclid(24 * 60);
        if minute == 16 * 60 {
            assert_eq!(t.exit_ts_ns, tick.ts_ns);
            assert_eq!(t.exit_price, tick.price - TICK);
            assert!(ny_minutes(ticks[i - 1].ts_ns).rem_euclid(24 * 60) < 16 * 60);
            next_print += 1;
        } else {
            let last = last_rth_bars
                .iter()
                .find(|b| ny_day(b.ts_ns) == ny_day(t.exit_ts_ns))
                .unwrap();
            assert!(minute < 16 * 60, "{t:?}");
            assert_eq!(t.exit_ts_ns, last.ts_ns + MINUTE_NS, "{t:?}");
            assert_eq!(t.exit_price, last.close - TICK, "{t:?}");
            assert!(
                tick.ts_ns - t.exit_ts_ns > 4 * 60 * MINUTE_NS,
                "trading stopped"
            );
            at_last_price += 1;
        }
    }
    assert_eq!(at_last_price, 2, "Thanksgiving and the day after");
    assert!(next_print >= 7, "{next_print} regular session ends");
}

/// One step of a random stream: a print after a gap, or a clock call.
#[derive(Debug, Clone)]
enum Input {
    Print { gap_ms: i64, move_ticks: i8 },
    Clock { gap_ms: i64 },
}

fn input() -> impl Strategy<Value = Input> {
    let gap = prop_oneof![
        20 => 1i64..40_000,
        2 => 40_000i64..600_000,
        1 => 600_000i64..86_400_000,
    ];
    prop_oneof![
        12 => (gap.clone(), -8i8..=8).prop_map(|(gap_ms, move_ticks)| Input::Print { gap_ms, move_ticks }),
        1 => gap.prop_map(|gap_ms| Input::Clock { gap_ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the prints, gaps and clock calls, every trade opens inside an
    /// RTH session and is closed before one bar past that session's end.
    #[test]
    fn no_trade_outlives_its_session_by_a_bar(
        day in 19_000i64..20_500,
        start_minute in 11 * 60u32..15 * 60 + 50,
        steps in prop::collection::vec(input(), 1500..3000),
        seed in any::<u64>(),
    ) {
        let buffer = checkpoint();
        let mut engine = engine(&buffer);
        let calendar = SessionCalendar::new(SessionHours::RTH);
        let bar_ns = MINUTE_NS;
        let mut rng = seed | 1;
        let mut choose = |mask: ActionMask, _position: i8| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let allowed: Vec<Action> = (0..6u8)
                .filter_map(Action::from_code)
                .filter(|a| mask.allows(*a))
                .collect();
            allowed[(rng % allowed.len() as u64) as usize]
        };
        // Warm the features up on a day of quiet prints before the stream.
        let mut now = new_york_to_utc(day, start_minute) - 200 * bar_ns;
        let mut price = 16_000.0;
        for _ in 0..200 {
            let tick = Tick { ts_ns: now, price, size: 1.0, side: Side::None };
            engine.on_tick_with(&tick, &mut choose).unwrap();
            now += bar_ns;
        }
        let mut trades = Vec::new();
        // The sessions that had their `SessionEnd` decision: once each.
        let mut ended = std::collections::HashSet::new();
        // When the position held now was entered.
        let mut held_since: Option<i64> = None;
        for s in &steps {
            let (clock, step) = match *s {
                Input::Print { gap_ms, move_ticks } => {
                    now += gap_ms * 1_000_000;
                    price = (price + f64::from(move_ticks) * TICK).max(1_000.0);
                    let tick = Tick { ts_ns: now, price, size: 1.0, side: Side::None };
                    (false, engine.on_tick_with(&tick, &mut choose).unwrap())
                }
                Input::Clock { gap_ms } => {
                    now += gap_ms * 1_000_000;
                    (true, engine.flush(now))
                }
            };
            trades.extend(step.exits().copied());
            if let Some(d) = step.decision.filter(|d| d.kind == DecisionKind::SessionEnd) {
                let id = calendar.session_at(d.bar_ts_ns).map_or(d.bar_ts_ns, |s| s.id);
                prop_assert!(ended.insert(id), "a second session_end for session {}: {:?}", id, d);
            }
            if step.account.position == 0 {
                held_since = None;
            } else if let Some(entry) = step.entry {
                held_since = Some(entry.ts_ns);
            }
            // A clock a bar past the session end closes what the session
            // left, without waiting for the next print.
            if let (true, Some(since)) = (clock, held_since) {
                let end = calendar.session_at(since).map_or(i64::MAX, |s| s.end_ns);
                prop_assert!(
                    now < end + bar_ns,
                    "still held at a clock {} ns past the end of the session entered at {}",
                    now - end, since
                );
            }
        }
        for t in &trades {
            let session = calendar.session_at(t.entry_ts_ns);
            prop_assert!(session.is_some(), "entry outside the session: {:?}", t);
            let session = session.unwrap();
            prop_assert!(
                t.exit_ts_ns < session.end_ns + bar_ns,
                "held past the session end {}: {:?}", session.end_ns, t
            );
        }
    }
}

/// The engine's day of `bars` that ends at 16:00 New York: the bars of every
/// earlier day and that day's, up to and including its 15:58 bar, and the
/// day itself.
fn up_to_a_quiet_last_minute(bars: &[Bar]) -> (Vec<Bar>, i64) {
    let last_bars = last_bar_of_each_day(bars);
    let regular = last_bars
        .iter()
        .skip(1)
        .find(|b| (ny_minutes(b.ts_ns) + 1).rem_euclid(24 * 60) == 16 * 60)
        .expect("a regular day");
    let day = ny_day(regular.ts_ns);
    let kept = bars
        .iter()
        .copied()
        .filter(|b| ny_day(b.ts_ns) < day || b.ts_ns < regular.ts_ns)
        .collect();
    (kept, day)
}

/// A time on New York day `day` (EST), `ms` after `hh:mm`.
fn ny_time(day: i64, hh: u32, mm: u32, ms: i64) -> i64 {
    new_york_to_utc(day, hh * 60 + mm) + ms * 1_000_000
}

/// Live, an RTH-only feed with no print in the session's last minute (or an
/// early close) leaves no bar to close at the session end, so the clock
/// ends the session: the first clock past the end gives the `SessionEnd`
/// decision once; the flatten then fills on a print within a bar, or, with
/// none, a clock a bar past the end closes at the last bar's close.
#[test]
fn clocks_end_a_session_whose_market_stopped_before_its_end() {
    let (bars, day) = up_to_a_quiet_last_minute(&rth_bars());
    let last = *bars.last().unwrap();
    assert_eq!(ny_minutes(last.ts_ns).rem_euclid(24 * 60), 15 * 60 + 58);
    let buffer = checkpoint();
    for print_after_end in [false, true] {
        let mut engine = engine(&buffer);
        for tick in ticks_of(&bars) {
            engine.on_tick_with(&tick, &mut always_long).unwrap();
        }
        // The 15:58 bar closes on the clock, with the policy's own decision
        // (here an exit that waits for a print, which never comes).
        assert!(engine.flush(ny_time(day, 15, 59, 200)).decision.is_some());
        assert_eq!(engine.flush(ny_time(day, 15, 59, 40_000)).decision, None);
        assert_eq!(engine.simulator().position_side(), 1, "long into the end");
        let reason = match engine.simulator().pending() {
            Some(PendingOrder::Exit { reason, .. }) => reason,
            _ => ExitReason::SessionEnd,
        };

        let end = engine
            .flush(ny_time(day, 16, 0, 200))
            .decision
            .expect("a session end");
        assert_eq!(end.kind, DecisionKind::SessionEnd);
        assert_eq!((end.action, end.target_position), (Action::Hold, 0));
        assert_eq!(end.close, last.close);
        assert_eq!(end.bar_ts_ns, last.ts_ns);
        let again = engine.flush(ny_time(day, 16, 0, 30_000));
        assert_eq!(again.decision, None, "said once");
        assert!(again.exits().next().is_none(), "a print may still come");

        let exit = if print_after_end {
            let print = Tick {
                ts_ns: ny_time(day, 16, 0, 45_000),
                price: last.close + 1.0,
                size: 1.0,
                side: Side::None,
            };
            let step = engine.on_tick_with(&print, &mut always_long).unwrap();
            assert_eq!(step.decision, None);
            let exit = *step.exits().next().expect("the print fills the flatten");
            assert_eq!(
                (exit.exit_ts_ns, exit.exit_price),
                (print.ts_ns, print.price - TICK)
            );
            exit
        } else {
            let step = engine.flush(ny_time(day, 16, 1, 200));
            assert_eq!(step.decision, None);
            let exit = *step.exits().next().expect("a bar past the end, closed");
            assert_eq!(exit.exit_ts_ns, last.ts_ns + MINUTE_NS);
            assert_eq!(exit.exit_price, last.close - TICK);
            exit
        };
        assert_eq!(exit.exit_reason, reason, "{print_after_end}: {exit:?}");
        assert_eq!(engine.simulator().position_side(), 0);
        assert!(engine.simulator().pending().is_none());
        assert_eq!(
            engine.flush(ny_time(day, 16, 5, 0)).decision,
            None,
            "nothing left to end"
        );
    }
}

/// The same with bars that stop early (Thanksgiving's last bar is 12:59):
/// a clock at the session end closes the position at that bar's close at
/// once, as the next bar would.
#[test]
fn a_clock_ends_a_session_of_bars_that_stopped_early() {
    let bars = rth_bars();
    let last_bars = last_bar_of_each_day(&bars);
    let thanksgiving = *last_bars
        .iter()
        .find(|b| (ny_minutes(b.ts_ns) + 1).rem_euclid(24 * 60) == 13 * 60)
        .unwrap();
    let day = ny_day(thanksgiving.ts_ns);
    let buffer = checkpoint();
    let mut engine = engine(&buffer);
    for bar in bars.iter().filter(|b| b.ts_ns <= thanksgiving.ts_ns) {
        engine.on_bar_with(bar, &mut always_long).unwrap();
    }
    assert_eq!(
        engine.simulator().position_side(),
        1,
        "long into the early close"
    );
    assert_eq!(
        engine.flush(ny_time(day, 15, 0, 0)).decision,
        None,
        "the session is still on"
    );
    let step = engine.flush(ny_time(day, 16, 0, 0));
    let end = step.decision.expect("a session end");
    assert_eq!(
        (end.kind, end.target_position),
        (DecisionKind::SessionEnd, 0)
    );
    let exit = *step.exits().next().expect("closed at once");
    assert_eq!(exit.exit_ts_ns, thanksgiving.ts_ns + MINUTE_NS);
    assert_eq!(exit.exit_price, thanksgiving.close - TICK);
    assert_eq!(engine.simulator().position_side(), 0);
}

/// The chain the property test found (its seed is in
/// `engine_session_end.proptest-regressions`): the session's last traded bar
/// closes on a clock while long; a print at 16:00:00.226 opens a bar outside
/// the session, still inside the one-bar grace; a clock at 16:00:59 and a
/// print at 16:01:12 follow. The print past the end is the first chance to
/// flatten, and the flatten fills on it, with one `SessionEnd` decision for
/// the session. (The engine used to wait: the clock said `SessionEnd`, the
/// 16:01:12 print said it again, and the trade exited 72 s past the end.)
#[test]
fn a_print_past_the_end_after_a_clock_close_fills_the_flatten_at_once() {
    let (bars, day) = up_to_a_quiet_last_minute(&rth_bars());
    let buffer = checkpoint();
    let mut engine = engine(&buffer);
    for tick in ticks_of(&bars) {
        engine.on_tick_with(&tick, &mut always_long).unwrap();
    }
    let closed = engine.flush(ny_time(day, 15, 59, 200));
    assert_eq!(
        closed.bar.map(|b| b.bar_ts_ns),
        bars.last().map(|b| b.ts_ns)
    );
    assert_eq!(closed.account.position, 1, "long into the end");
    let price = bars.last().unwrap().close;
    let print = |ms: i64| Tick {
        ts_ns: ny_time(day, 16, 0, ms),
        price: price + 2.0,
        size: 1.0,
        side: Side::None,
    };
    let mut steps = vec![engine.on_tick_with(&print(226), &mut always_long).unwrap()];
    steps.push(engine.flush(ny_time(day, 16, 0, 59_000)));
    steps.push(
        engine
            .on_tick_with(&print(72_000), &mut always_long)
            .unwrap(),
    );
    let ends: Vec<_> = steps
        .iter()
        .filter_map(|s| s.decision)
        .filter(|d| d.kind == DecisionKind::SessionEnd)
        .collect();
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert_eq!(ends[0].ts_ns, print(226).ts_ns);
    let exits: Vec<TradeRecord> = steps.iter().flat_map(|s| s.exits().copied()).collect();
    assert_eq!(exits.len(), 1, "{exits:?}");
    assert_eq!(exits[0].exit_ts_ns, print(226).ts_ns, "{exits:?}");
    assert_eq!(exits[0].exit_price, print(226).price - TICK);
    assert_eq!(steps[0].account.position, 0);
}

/// The same through clocks only, as nq-signal met it: a print at
/// 16:00:00.1, then clocks at 16:00:00.2, 16:01:00.2 and 16:02:00.2. One
/// `session_end` (it used to come twice) and the position closed that day
/// (it used to be held until the next morning's first print).
#[test]
fn clocks_after_a_print_past_the_end_say_session_end_once_and_close_that_day() {
    let (bars, day) = up_to_a_quiet_last_minute(&rth_bars());
    let buffer = checkpoint();
    let mut engine = engine(&buffer);
    for tick in ticks_of(&bars) {
        engine.on_tick_with(&tick, &mut always_long).unwrap();
    }
    assert_eq!(
        engine.flush(ny_time(day, 15, 59, 200)).account.position,
        1,
        "long into the end"
    );
    let print = Tick {
        ts_ns: ny_time(day, 16, 0, 100),
        price: bars.last().unwrap().close,
        size: 1.0,
        side: Side::None,
    };
    let mut steps = vec![engine.on_tick_with(&print, &mut always_long).unwrap()];
    for (mm, ms) in [(0, 200), (1, 200), (2, 200)] {
        steps.push(engine.flush(ny_time(day, 16, mm, ms)));
    }
    let kinds: Vec<_> = steps
        .iter()
        .filter_map(|s| s.decision.map(|d| d.kind))
        .collect();
    assert_eq!(kinds, [DecisionKind::SessionEnd]);
    let exits: Vec<TradeRecord> = steps.iter().flat_map(|s| s.exits().copied()).collect();
    assert_eq!(exits.len(), 1);
    assert_eq!(ny_day(exits[0].exit_ts_ns), day);
    assert!(exits[0].exit_ts_ns < ny_time(day, 16, 1, 0));
    assert!(steps.iter().all(|s| s.account.position == 0));
}

/// An early close in bar data is known only when a bar past the session end
/// comes: that step's first exit is the close-out, dated at the last bar's
/// end (before the bar that brought it), and the step says so, so a report
/// can book it on that day without asking the engine what happened.
#[test]
fn the_close_out_of_an_early_close_says_it_is_one() {
    let bars = rth_bars();
    let last_bars = last_bar_of_each_day(&bars);
    let buffer = checkpoint();
    let mut engine = engine(&buffer);
    let mut closed_out = Vec::new();
    for bar in &bars {
        let step = engine.on_bar_with(bar, &mut always_long).unwrap();
        let first = step.exits().next().copied();
        if step.closed_out {
            let t = first.expect("a close-out is an exit");
            assert!(
                t.exit_ts_ns <= bar.ts_ns,
                "{t:?} dated before {}",
                bar.ts_ns
            );
            assert_eq!(t.exit_reason, ExitReason::SessionEnd);
            closed_out.push(t);
        } else if let Some(t) = first {
            assert!(t.exit_ts_ns >= bar.ts_ns, "an exit of this bar: {t:?}");
        }
    }
    // Thanksgiving and the day after, each at its last bar's end.
    assert_eq!(closed_out.len(), 2, "{closed_out:?}");
    for t in &closed_out {
        assert!(last_bars
            .iter()
            .any(|b| b.ts_ns + MINUTE_NS == t.exit_ts_ns));
    }
}
