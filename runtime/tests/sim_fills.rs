//! One test per fill rule of the execution simulator (SPEC section 6), with the
//! expected prices worked out by hand for NQ (tick 0.25 pt, $5 a tick, $20 a point).

use nq_formats::{Action, Bar, Instrument, SimConfig, Tick};
use nq_runtime::sim::{
    ExitReason, PendingOrder, PositionSync, Refused, Simulator, Submitted, TradeRecord,
};
use nq_runtime::ActionMask;

/// ATR 4 points: stop 6 points (24 ticks), target 12 points (48 ticks), trail
/// step 2 points, minimum trail distance 2 points, maximum 12 points.
const ATR: f64 = 4.0;
const START: f64 = 50_000.0;

fn config() -> SimConfig {
    SimConfig::default_for(Instrument::Nq)
}

fn sim() -> Simulator {
    Simulator::new(config()).unwrap()
}

fn tick(ts_ns: i64, price: f64) -> Tick {
    Tick {
        ts_ns,
        price,
        size: 1.0,
        ..Tick::default()
    }
}

fn bar(ts_ns: i64, open: f64, high: f64, low: f64, close: f64) -> Bar {
    Bar {
        ts_ns,
        open,
        high,
        low,
        close,
        volume: 10.0,
    }
}

/// A long opened on ticks: decision at 15000, filled at 15000.25 + 1 tick slippage.
fn long_on_ticks() -> Simulator {
    let mut s = sim();
    assert_eq!(
        s.submit(Action::Buy, 15000.0, ATR, 10),
        Ok(Submitted::OrderQueued)
    );
    let fill = s.on_tick(&tick(11, 15000.25)).entry.unwrap();
    assert_eq!(fill.price, 15000.5);
    s
}

fn short_on_ticks() -> Simulator {
    let mut s = sim();
    s.submit(Action::Sell, 15000.0, ATR, 10).unwrap();
    let fill = s.on_tick(&tick(11, 15000.25)).entry.unwrap();
    assert_eq!(fill.price, 15000.0);
    s
}

fn exit_of(s: &mut Simulator, t: Tick) -> TradeRecord {
    s.on_tick(&t)
        .exit
        .expect("the tick should close the position")
}

#[test]
fn entry_fills_at_the_next_tick_with_adverse_slippage_and_commission() {
    let mut s = sim();
    s.submit(Action::Buy, 15000.0, ATR, 100).unwrap();
    assert!(
        s.on_tick(&tick(99, 15000.0)).is_empty(),
        "a tick before the decision cannot fill it"
    );
    assert!(s.position_view().is_flat());
    let fill = s.on_tick(&tick(100, 15001.0)).entry.unwrap();
    assert_eq!((fill.ts_ns, fill.side, fill.contracts), (100, 1, 1));
    assert_eq!(fill.price, 15001.25);
    assert_eq!(fill.stop_price, 15001.25 - 6.0);
    assert_eq!(fill.target_price, 15001.25 + 12.0);
    assert_eq!(fill.commission, 2.5);
    assert_eq!(s.balance(), START - 2.5);
    assert_eq!(s.commissions(), 2.5);
    let view = s.position_view();
    assert_eq!(
        (view.side, view.entry_price, view.bars_held),
        (1, 15001.25, 0)
    );
    // Marked at the fill tick, the long is one tick of slippage under water.
    assert_eq!(s.equity(15001.0), START - 2.5 - 5.0);
}

#[test]
fn short_entry_slips_down() {
    let s = short_on_ticks();
    let v = s.position_view();
    assert_eq!(
        (v.side, v.stop_price, v.target_price),
        (-1, 15006.0, 14988.0)
    );
}

#[test]
fn signal_close_fills_at_the_next_tick_and_books_the_round_trip() {
    let mut s = long_on_ticks();
    assert_eq!(
        s.submit(Action::Sell, 15004.0, ATR, 20),
        Ok(Submitted::OrderQueued)
    );
    assert!(
        !s.position_view().is_flat(),
        "the close waits for the next tick"
    );
    let t = exit_of(&mut s, tick(21, 15004.0));
    assert_eq!(t.exit_reason, ExitReason::Signal);
    assert_eq!(t.exit_price, 15003.75);
    assert_eq!(t.gross_pnl, (15003.75 - 15000.5) * 20.0);
    assert_eq!(t.commission, 5.0);
    assert_eq!(t.net_pnl, 65.0 - 5.0);
    assert_eq!((t.entry_ts_ns, t.exit_ts_ns), (11, 21));
    assert_eq!(s.balance(), START + 60.0);
    assert_eq!(s.realized_pnl(), 65.0);
    assert_eq!(s.trade_count(), 1);
    assert!(s.position_view().is_flat());
}

#[test]
fn short_signal_close_buys_back_with_slippage() {
    let mut s = short_on_ticks();
    s.submit(Action::Buy, 14990.0, ATR, 20).unwrap();
    let t = exit_of(&mut s, tick(21, 14990.0));
    assert_eq!((t.side, t.exit_price), (-1, 14990.25));
    assert_eq!(t.gross_pnl, (15000.0 - 14990.25) * 20.0);
}

#[test]
fn tick_stop_triggers_on_touch_and_fills_at_the_stop_less_slippage() {
    let mut s = long_on_ticks();
    assert!(
        s.on_tick(&tick(12, 14994.75)).exit.is_none(),
        "one tick above the stop"
    );
    let t = exit_of(&mut s, tick(13, 14994.5));
    assert_eq!((t.exit_reason, t.exit_price), (ExitReason::Stop, 14994.25));
    assert_eq!(t.gross_pnl, -6.25 * 20.0);
}

#[test]
fn tick_gap_through_the_stop_fills_at_the_trade_price() {
    let mut s = long_on_ticks();
    let t = exit_of(&mut s, tick(12, 14980.0));
    assert_eq!((t.exit_reason, t.exit_price), (ExitReason::Stop, 14979.75));
    let mut s = short_on_ticks();
    let t = exit_of(&mut s, tick(12, 15020.0));
    assert_eq!((t.exit_reason, t.exit_price), (ExitReason::Stop, 15020.25));
}

#[test]
fn tick_target_needs_a_trade_through_and_fills_at_the_target_without_slippage() {
    let mut s = long_on_ticks();
    assert!(
        s.on_tick(&tick(12, 15012.5)).exit.is_none(),
        "a touch does not fill a limit"
    );
    let t = exit_of(&mut s, tick(13, 15030.0));
    assert_eq!((t.exit_reason, t.exit_price), (ExitReason::Target, 15012.5));
    assert_eq!(t.gross_pnl, 12.0 * 20.0);
    let mut s = short_on_ticks();
    assert!(s.on_tick(&tick(12, 14988.0)).exit.is_none());
    let t = exit_of(&mut s, tick(13, 14987.75));
    assert_eq!((t.exit_reason, t.exit_price), (ExitReason::Target, 14988.0));
}

#[test]
fn bar_entry_fills_at_the_next_open_and_the_bracket_covers_that_bar() {
    let mut s = sim();
    s.submit(Action::Buy, 15000.0, ATR, 60).unwrap();
    let ev = s.on_bar(&bar(60, 15002.0, 15003.0, 15001.0, 15002.5));
    let fill = ev.entry.unwrap();
    assert_eq!((fill.price, fill.ts_ns), (15002.25, 60));
    assert!(ev.exit.is_none());
    // The next decision's order enters at 15010.25 and that same bar hits the stop.
    let mut s = sim();
    s.submit(Action::Buy, 15000.0, ATR, 60).unwrap();
    let ev = s.on_bar(&bar(60, 15010.0, 15011.0, 15003.0, 15005.0));
    assert_eq!(ev.entry.unwrap().price, 15010.25);
    let t = ev.exit.unwrap();
    assert_eq!(
        (t.exit_reason, t.exit_price, t.exit_ts_ns),
        (ExitReason::Stop, 15004.0, 60)
    );
}

fn long_on_bars() -> Simulator {
    let mut s = sim();
    s.submit(Action::Buy, 15000.0, ATR, 60).unwrap();
    let ev = s.on_bar(&bar(60, 15000.25, 15001.0, 15000.0, 15000.5));
    assert_eq!(ev.entry.unwrap().price, 15000.5);
    s.on_bar_close();
    s
}

#[test]
fn bar_with_stop_and_target_inside_assumes_the_stop_first() {
    let mut s = long_on_bars();
    let t = s
        .on_bar(&bar(120, 15001.0, 15020.0, 14990.0, 15015.0))
        .exit
        .unwrap();
    assert_eq!((t.exit_reason, t.exit_price), (ExitReason::Stop, 14994.25));
    assert_eq!(t.bars_held, 1);
}

#[test]
fn bar_gap_through_the_stop_fills_at_the_open() {
    let mut s = long_on_bars();
    let t = s
        .on_bar(&bar(120, 14990.0, 15020.0, 14985.0, 15010.0))
        .exit
        .unwrap();
    assert_eq!((t.exit_reason, t.exit_price), (ExitReason::Stop, 14989.75));
}

#[test]
fn bar_gap_through_the_target_fills_at_the_target() {
    let mut s = long_on_bars();
    let t = s
        .on_bar(&bar(120, 15020.0, 15021.0, 14980.0, 15000.0))
        .exit
        .unwrap();
    assert_eq!((t.exit_reason, t.exit_price), (ExitReason::Target, 15012.5));
}

#[test]
fn bar_target_fills_only_when_the_high_trades_through() {
    let mut s = long_on_bars();
    assert!(s
        .on_bar(&bar(120, 15001.0, 15012.5, 14995.0, 15010.0))
        .exit
        .is_none());
    let t = s
        .on_bar(&bar(180, 15010.0, 15012.75, 15009.0, 15011.0))
        .exit
        .unwrap();
    assert_eq!((t.exit_reason, t.exit_price), (ExitReason::Target, 15012.5));
}

#[test]
fn bar_stop_at_the_low_fills_at_the_stop_less_slippage() {
    let mut s = long_on_bars();
    assert!(s
        .on_bar(&bar(120, 15001.0, 15002.0, 14994.75, 15000.0))
        .exit
        .is_none());
    let t = s
        .on_bar(&bar(180, 15000.0, 15002.0, 14994.5, 15000.0))
        .exit
        .unwrap();
    assert_eq!((t.exit_reason, t.exit_price), (ExitReason::Stop, 14994.25));
}

#[test]
fn short_bracket_on_bars_mirrors_the_long() {
    let mut s = sim();
    s.submit(Action::Sell, 15000.0, ATR, 60).unwrap();
    s.on_bar(&bar(60, 15000.25, 15001.0, 15000.0, 15000.5));
    // Entry 15000.0: stop 15006, target 14988. Both inside: stop first.
    let t = s
        .on_bar(&bar(120, 15000.0, 15007.0, 14980.0, 14990.0))
        .exit
        .unwrap();
    assert_eq!(
        (t.side, t.exit_reason, t.exit_price),
        (-1, ExitReason::Stop, 15006.25)
    );
}

#[test]
fn brackets_round_away_from_entry_to_whole_ticks() {
    let mut s = sim();
    // 1.5 x 3.3 = 4.95 points = 19.8 ticks -> 20; 3 x 3.3 = 9.9 points = 39.6 ticks -> 40.
    s.submit(Action::Buy, 15000.0, 3.3, 0).unwrap();
    let fill = s.on_tick(&tick(1, 15000.0)).entry.unwrap();
    assert_eq!(fill.stop_price, 15000.25 - 5.0);
    assert_eq!(fill.target_price, 15000.25 + 10.0);
    let mut s = sim();
    s.submit(Action::Sell, 15000.0, 3.3, 0).unwrap();
    let fill = s.on_tick(&tick(1, 15000.0)).entry.unwrap();
    assert_eq!(fill.stop_price, 14999.75 + 5.0);
    assert_eq!(fill.target_price, 14999.75 - 10.0);
    assert_eq!(
        s.bracket(-1, 14999.75, 3.3),
        Some((14999.75 + 5.0, 14999.75 - 10.0))
    );
    assert_eq!(s.bracket(0, 14999.75, 3.3), None);
    assert_eq!(s.bracket(1, 14999.75, f64::NAN), None);
    assert_eq!(s.market_fill_price(-1, 15000.0), Some(14999.75));
    // A tiny ATR still leaves one tick each side.
    let mut s = sim();
    s.submit(Action::Buy, 15000.0, 0.01, 0).unwrap();
    let fill = s.on_tick(&tick(1, 15000.0)).entry.unwrap();
    assert_eq!((fill.stop_price, fill.target_price), (15000.0, 15000.5));
}

#[test]
fn sl_to_be_needs_the_trigger_profit_and_moves_the_stop_one_tick_past_entry() {
    let mut s = long_on_ticks(); // entry 15000.5, trigger 1 ATR = 4 points
    assert!(!s.mask(15004.25, ATR, 6).allows(Action::SlToBe));
    assert_eq!(
        s.submit(Action::SlToBe, 15004.25, ATR, 20),
        Err(Refused {
            action: Action::SlToBe
        })
    );
    assert!(s.mask(15004.5, ATR, 6).allows(Action::SlToBe));
    assert_eq!(
        s.submit(Action::SlToBe, 15004.5, ATR, 20),
        Ok(Submitted::StopMoved {
            stop_price: 15000.75
        })
    );
    assert_eq!(s.position_view().stop_price, 15000.75);
    assert!(
        !s.mask(15010.0, ATR, 6).allows(Action::SlToBe),
        "already at break-even"
    );
    let t = exit_of(&mut s, tick(21, 15000.75));
    assert_eq!((t.exit_reason, t.exit_price), (ExitReason::Stop, 15000.5));
}

#[test]
fn sl_to_be_for_a_short_moves_the_stop_below_entry() {
    let mut s = short_on_ticks(); // entry 15000.0
    assert_eq!(
        s.submit(Action::SlToBe, 14995.0, ATR, 20),
        Ok(Submitted::StopMoved {
            stop_price: 14999.75
        })
    );
}

#[test]
fn sl_to_be_with_a_zero_trigger_still_keeps_the_stop_behind_price() {
    let mut s = Simulator::new(SimConfig {
        breakeven_trigger_atr: 0.0,
        ..config()
    })
    .unwrap();
    s.submit(Action::Buy, 15000.0, ATR, 0).unwrap();
    s.on_tick(&tick(1, 15000.25)); // entry 15000.5
    assert!(
        !s.mask(15000.75, ATR, 6).allows(Action::SlToBe),
        "stop would sit at the price"
    );
    assert!(s.mask(15001.0, ATR, 6).allows(Action::SlToBe));
}

#[test]
fn trail_tighten_moves_one_step_toward_price_while_the_minimum_distance_holds() {
    let mut s = long_on_ticks(); // stop 14994.5; step 2 points; min distance 2 points
    let price = 15000.5;
    let mut stops = Vec::new();
    while let Ok(Submitted::StopMoved { stop_price }) =
        s.submit(Action::TrailTighten, price, ATR, 20)
    {
        stops.push(stop_price);
    }
    assert_eq!(stops, vec![14996.5, 14998.5]);
    assert!(!s.mask(price, ATR, 6).allows(Action::TrailTighten));
    let mut s = short_on_ticks(); // stop 15006
    assert_eq!(
        s.submit(Action::TrailTighten, 15000.0, ATR, 20),
        Ok(Submitted::StopMoved {
            stop_price: 15004.0
        })
    );
}

#[test]
fn trail_loosen_moves_one_step_away_while_within_the_maximum_distance() {
    let mut s = long_on_ticks(); // stop 14994.5, 6 points from 15000.5; max 12 points
    let price = 15000.5;
    let mut stops = Vec::new();
    while let Ok(Submitted::StopMoved { stop_price }) =
        s.submit(Action::TrailLoosen, price, ATR, 20)
    {
        stops.push(stop_price);
    }
    assert_eq!(stops, vec![14992.5, 14990.5, 14988.5]);
    let mut s = short_on_ticks(); // stop 15006
    assert_eq!(
        s.submit(Action::TrailLoosen, 15000.0, ATR, 20),
        Ok(Submitted::StopMoved {
            stop_price: 15008.0
        })
    );
}

#[test]
fn mask_follows_the_position() {
    let buy_sell = ActionMask::HOLD_ONLY.with(Action::Buy).with(Action::Sell);
    let mut s = sim();
    assert_eq!(s.mask(15000.0, ATR, 6), buy_sell);
    assert_eq!(
        s.mask(15000.0, f64::NAN, 6),
        ActionMask::HOLD_ONLY,
        "no bracket without ATR"
    );
    assert_eq!(s.mask(15000.0, 0.0, 6), ActionMask::HOLD_ONLY);
    s.submit(Action::Buy, 15000.0, ATR, 10).unwrap();
    assert_eq!(
        s.mask(15000.0, ATR, 6),
        ActionMask::HOLD_ONLY,
        "order pending"
    );
    s.on_tick(&tick(11, 15000.25));
    let long = s.mask(15000.5, ATR, 6);
    assert_eq!(
        long,
        ActionMask::HOLD_ONLY
            .with(Action::Sell)
            .with(Action::TrailTighten)
            .with(Action::TrailLoosen)
    );
    assert_eq!(
        s.mask(15000.5, ATR, 3),
        ActionMask::HOLD_ONLY.with(Action::Sell)
    );
    assert_eq!(
        s.mask(15000.5, f64::NAN, 6),
        ActionMask::HOLD_ONLY.with(Action::Sell),
        "closing needs no ATR"
    );
    assert_eq!(
        s.submit(Action::Buy, 15000.5, ATR, 20),
        Err(Refused {
            action: Action::Buy
        })
    );
    let short = short_on_ticks().mask(15000.0, ATR, 3);
    assert_eq!(short, ActionMask::HOLD_ONLY.with(Action::Buy));
}

#[test]
fn refused_actions_change_nothing() {
    let mut s = long_on_ticks();
    let before = (s.position_view(), s.pending(), s.balance());
    for action in [Action::Buy, Action::SlToBe] {
        assert_eq!(s.submit(action, 15000.5, ATR, 20), Err(Refused { action }));
        assert_eq!((s.position_view(), s.pending(), s.balance()), before);
    }
    assert_eq!(
        s.submit(Action::Hold, f64::NAN, f64::NAN, 20),
        Ok(Submitted::Nothing)
    );
}

#[test]
fn flatten_closes_now_at_the_given_price_with_slippage() {
    let mut s = long_on_bars();
    s.on_bar(&bar(120, 15001.0, 15003.0, 15000.0, 15002.0));
    s.on_bar_close();
    let t = s.flatten(15002.0, 179, ExitReason::SessionEnd).unwrap();
    assert_eq!(
        (t.exit_reason, t.exit_price, t.exit_ts_ns),
        (ExitReason::SessionEnd, 15001.75, 179)
    );
    assert_eq!(t.bars_held, 2);
    assert!(s.flatten(15002.0, 180, ExitReason::SessionEnd).is_none());
    // A pending entry is cancelled.
    s.submit(Action::Sell, 15002.0, ATR, 180).unwrap();
    assert!(s.flatten(15002.0, 180, ExitReason::SessionEnd).is_none());
    assert_eq!(s.pending(), None);
    assert!(s
        .on_bar(&bar(240, 15002.0, 15003.0, 15001.0, 15002.0))
        .is_empty());
}

#[test]
fn flatten_on_next_fill_exits_on_the_next_tick_with_its_reason() {
    let mut s = long_on_ticks();
    s.flatten_on_next_fill(ExitReason::SessionEnd);
    assert!(matches!(
        s.pending(),
        Some(PendingOrder::Exit {
            reason: ExitReason::SessionEnd,
            ..
        })
    ));
    assert_eq!(s.mask(15000.0, ATR, 6), ActionMask::HOLD_ONLY);
    let t = exit_of(&mut s, tick(12, 15001.0));
    assert_eq!(
        (t.exit_reason, t.exit_price),
        (ExitReason::SessionEnd, 15000.75)
    );
    let mut s = sim();
    s.submit(Action::Buy, 15000.0, ATR, 10).unwrap();
    s.flatten_on_next_fill(ExitReason::SessionEnd);
    assert_eq!(s.pending(), None, "a pending entry is cancelled");
}

/// ATR 100: the stop (150 points, $3000) lies beyond the $2500 drawdown.
fn wide_long_on_ticks() -> Simulator {
    let mut s = sim();
    s.submit(Action::Buy, 15000.0, 100.0, 0).unwrap();
    s.on_tick(&tick(1, 15000.0)); // entry 15000.25, balance 49997.5
    s
}

#[test]
fn drawdown_breach_on_ticks_liquidates_and_locks_the_account() {
    let mut s = wide_long_on_ticks();
    // Breach when 49997.5 + favour x $5 <= 47500, i.e. favour <= -499.5 ticks.
    let ev = s.on_tick(&tick(2, 14875.5)); // favour -499 ticks
    assert!(ev.exit.is_none() && !ev.breached);
    let ev = s.on_tick(&tick(3, 14875.25));
    let t = ev.exit.unwrap();
    assert!(ev.breached && s.is_breached());
    assert_eq!(
        (t.exit_reason, t.exit_price),
        (ExitReason::Drawdown, 14875.0)
    );
    assert_eq!(s.mask(14875.0, ATR, 6), ActionMask::HOLD_ONLY);
    assert!(s.on_tick(&tick(4, 15000.0)).is_empty());
    assert_eq!(
        s.submit(Action::Buy, 15000.0, ATR, 5),
        Err(Refused {
            action: Action::Buy
        })
    );
}

#[test]
fn drawdown_trails_the_equity_high_water_mark() {
    let mut s = wide_long_on_ticks();
    s.on_tick(&tick(2, 15100.25)); // +100 points: equity 49997.5 + 2000
    assert_eq!(s.high_water_mark(), START - 2.5 + 2000.0);
    // The floor is now 51997.5 - 2500 = 49497.5 = 49997.5 - 100 ticks x $5.
    assert!(s.on_tick(&tick(3, 14975.5)).exit.is_none()); // favour -99 ticks
    let t = s.on_tick(&tick(4, 14975.25)).exit.unwrap();
    assert_eq!(t.exit_reason, ExitReason::Drawdown);
}

#[test]
fn drawdown_on_bars_exits_at_the_breach_level_unless_the_stop_comes_first() {
    let mut s = sim();
    s.submit(Action::Buy, 15000.0, 100.0, 0).unwrap();
    s.on_bar(&bar(60, 15000.0, 15001.0, 14999.0, 15000.0)); // entry 15000.25
    let t = s
        .on_bar(&bar(120, 15000.0, 15001.0, 14800.0, 14810.0))
        .exit
        .unwrap();
    assert_eq!(
        (t.exit_reason, t.exit_price),
        (ExitReason::Drawdown, 14875.0)
    );
    assert!(s.is_breached());
    // ATR 60: stop 90 points ($1800) sits above the breach level; the stop fires.
    let mut s = sim();
    s.submit(Action::Buy, 15000.0, 60.0, 0).unwrap();
    s.on_bar(&bar(60, 15000.0, 15001.0, 14999.0, 15000.0));
    let t = s
        .on_bar(&bar(120, 15000.0, 15001.0, 14800.0, 14810.0))
        .exit
        .unwrap();
    assert_eq!((t.exit_reason, t.exit_price), (ExitReason::Stop, 14910.0));
    assert!(!s.is_breached());
}

#[test]
fn a_realized_loss_past_the_limit_breaches_a_flat_account() {
    let mut s = Simulator::new(SimConfig {
        max_drawdown: 100.0,
        ..config()
    })
    .unwrap();
    s.submit(Action::Buy, 15000.0, ATR, 0).unwrap();
    s.on_tick(&tick(1, 15000.0));
    // Stop 24 ticks below entry = $120 loss; the tick breaches first at -$100.
    let mut breached_by = None;
    for (i, p) in [14999.0, 14998.0, 14997.0, 14996.0, 14995.0]
        .into_iter()
        .enumerate()
    {
        let ev = s.on_tick(&tick(2 + i as i64, p));
        if ev.breached {
            breached_by = ev.exit.map(|t| t.exit_reason);
            break;
        }
    }
    assert_eq!(breached_by, Some(ExitReason::Drawdown));
    assert!(s.position_view().is_flat());
}

#[test]
fn no_drawdown_limit_means_no_breach() {
    let mut s = Simulator::new(SimConfig {
        max_drawdown: 0.0,
        ..config()
    })
    .unwrap();
    s.submit(Action::Buy, 15000.0, 1000.0, 0).unwrap();
    s.on_tick(&tick(1, 15000.0));
    assert!(!s.on_tick(&tick(2, 14000.0)).breached);
    assert_eq!(s.equity(14000.0), START - 2.5 - 1000.25 * 20.0);
}

#[test]
fn bars_held_and_excursions_are_tracked() {
    let mut s = long_on_bars(); // entry 15000.5, bars_held 1
    s.on_bar(&bar(120, 15001.0, 15008.0, 14998.0, 15005.0));
    s.on_bar_close();
    let v = s.position_view();
    assert_eq!(
        (v.bars_held, v.best_price, v.worst_price),
        (2, 15008.0, 14998.0)
    );
    s.submit(Action::Sell, 15005.0, ATR, 180).unwrap();
    let t = s
        .on_bar(&bar(180, 15003.0, 15004.0, 15002.0, 15003.0))
        .exit
        .unwrap();
    assert_eq!(t.exit_price, 15002.75);
    assert_eq!(t.bars_held, 2);
    assert_eq!(t.mae, (14998.0 - 15000.5) * 20.0);
    assert_eq!(t.mfe, (15008.0 - 15000.5) * 20.0);
}

#[test]
fn a_stopped_bar_does_not_count_prices_beyond_the_fill() {
    let mut s = long_on_bars(); // entry 15000.5, stop 14994.5
    let t = s
        .on_bar(&bar(120, 15003.0, 15004.0, 14900.0, 14950.0))
        .exit
        .unwrap();
    assert_eq!(t.exit_price, 14994.25);
    assert_eq!(t.mae, t.gross_pnl, "the worst price is the stop fill");
    assert_eq!(
        t.mfe,
        (15003.0 - 15000.5) * 20.0,
        "the open came before the stop"
    );
}

#[test]
fn unusable_input_is_ignored() {
    let mut s = long_on_ticks();
    let before = (s.position_view(), s.balance(), s.last_price());
    for p in [f64::NAN, f64::INFINITY, -1.0, 0.0, 1e300] {
        assert!(s.on_tick(&tick(12, p)).is_empty());
    }
    assert!(s
        .on_bar(&bar(12, 15000.0, 14000.0, 15001.0, 15000.0))
        .is_empty());
    assert!(s
        .on_bar(&bar(12, f64::NAN, 15000.0, 15000.0, 15000.0))
        .is_empty());
    assert_eq!((s.position_view(), s.balance(), s.last_price()), before);
    assert_eq!(s.equity(f64::NAN), s.equity(15000.25));
    for atr in [f64::NAN, -1.0, f64::INFINITY, 1e300] {
        for a in Action::ALL {
            let _ = s.clone().submit(a, 15000.0, atr, 0);
            let _ = s.clone().submit(a, f64::NAN, atr, 0);
        }
    }
    let t = s.flatten(f64::NAN, 30, ExitReason::EndOfData).unwrap();
    assert_eq!(
        t.exit_price, 15000.0,
        "falls back to the last price, less slippage"
    );
}

#[test]
fn reset_restores_the_starting_state() {
    let mut s = long_on_ticks();
    s.submit(Action::Sell, 15000.0, ATR, 20).unwrap();
    s.reset();
    assert!(s.position_view().is_flat());
    assert_eq!(
        (s.pending(), s.balance(), s.commissions(), s.trade_count()),
        (None, START, 0.0, 0)
    );
    assert_eq!(s.last_price(), None);
}

#[test]
fn exit_reason_names_round_trip() {
    for r in ExitReason::ALL {
        assert_eq!(ExitReason::from_name(r.name()), Some(r));
    }
    assert_eq!(ExitReason::SessionEnd.name(), "SESSION_END");
}

#[test]
fn bad_settings_are_named() {
    let bad = SimConfig {
        stop_atr: f64::NAN,
        ..config()
    };
    assert_eq!(Simulator::new(bad).err(), Some("stop_atr"));
}

fn report(
    side: i8,
    entry_price: f64,
    stop: Option<f64>,
    target: Option<f64>,
    atr: f64,
) -> PositionSync {
    PositionSync {
        ts_ns: 500,
        side,
        entry_price,
        stop_price: stop,
        target_price: target,
        atr,
    }
}

#[test]
fn sync_on_the_same_side_keeps_the_trade_history_and_takes_the_reported_prices() {
    let mut s = long_on_bars(); // entry 15000.5, stop 14994.5, target 15012.5, 1 bar held
    s.on_bar(&bar(120, 15001.0, 15008.0, 14998.0, 15005.0));
    s.submit(Action::Sell, 15005.0, ATR, 180).unwrap();
    let balance = s.balance();
    assert!(s
        .sync_position(&report(1, 15000.75, Some(14990.0), None, ATR))
        .is_none());
    let v = s.position_view();
    assert_eq!(
        (v.entry_price, v.stop_price, v.target_price),
        (15000.75, 14990.0, 15012.5)
    );
    assert_eq!(
        (v.bars_held, v.best_price, v.worst_price),
        (1, 15008.0, 14998.0)
    );
    assert_eq!(s.pending(), None, "the execution system has acted");
    assert_eq!(s.balance(), balance);
}

#[test]
fn sync_to_flat_books_an_external_exit_at_the_last_price() {
    let mut s = long_on_ticks(); // entry 15000.5
    s.on_tick(&tick(12, 15003.0));
    let t = s
        .sync_position(&report(0, f64::NAN, None, None, f64::NAN))
        .unwrap();
    assert_eq!(
        (t.exit_reason, t.exit_price, t.exit_ts_ns),
        (ExitReason::External, 15003.0, 500)
    );
    assert_eq!(t.gross_pnl, 2.5 * 20.0);
    assert_eq!(s.balance(), START + t.net_pnl);
    assert!(s.position_view().is_flat());
}

#[test]
fn sync_to_the_other_side_closes_and_opens_with_an_atr_bracket() {
    let mut s = long_on_ticks();
    s.on_tick(&tick(12, 15001.0));
    let t = s
        .sync_position(&report(-1, 15001.0, None, None, ATR))
        .unwrap();
    assert_eq!(t.exit_price, 15001.0);
    let v = s.position_view();
    assert_eq!(
        (v.side, v.entry_price, v.stop_price, v.target_price),
        (-1, 15001.0, 15007.0, 14989.0)
    );
    assert_eq!(
        s.balance(),
        START + t.net_pnl - 2.5,
        "the new entry pays its commission"
    );
}

#[test]
fn sync_without_a_bracket_or_atr_leaves_the_legs_out_of_reach() {
    let mut s = sim();
    s.on_tick(&tick(1, 15000.0));
    assert!(s
        .sync_position(&report(1, 15000.0, None, None, f64::NAN))
        .is_none());
    for (i, p) in [10_000.0, 20_000.0].into_iter().enumerate() {
        assert!(s.on_tick(&tick(2 + i as i64, p)).exit.is_none() || s.is_breached());
    }
    let mut s = Simulator::new(SimConfig {
        max_drawdown: 0.0,
        ..config()
    })
    .unwrap();
    s.sync_position(&report(1, 15000.0, None, None, 0.0));
    assert!(s.on_tick(&tick(2, 10_000.0)).exit.is_none());
    assert!(s.on_tick(&tick(3, 20_000.0)).exit.is_none());
}
