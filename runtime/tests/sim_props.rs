//! Property tests of the execution simulator over random tick and bar paths and
//! random valid action sequences: the accounting identities, the mask/submit
//! contract, the tick grid and the conservative bar rule.

use nq_formats::{Action, Bar, Instrument, InstrumentSpec, SimConfig, Tick};
use nq_runtime::sim::{
    ExitReason, PendingOrder, PositionSync, Refused, SimEvents, Simulator, Submitted, TradeRecord,
};
use nq_runtime::PositionView;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Setup {
    config: SimConfig,
    /// ATR in ticks at each decision, cycled.
    atr_ticks: Vec<f64>,
    /// Which allowed action to take at each decision, cycled.
    choices: Vec<u8>,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        0usize..Instrument::ALL.len(),
        0u32..4,
        0.0f64..5.0,
        prop_oneof![Just(0.0), 50.0f64..3000.0],
        0.0f64..2.0,
        (0.2f64..2.0, 0.0f64..1.0, 1.0f64..4.0),
        prop::collection::vec(0.5f64..60.0, 1..8),
        prop::collection::vec(any::<u8>(), 1..64),
    )
        .prop_map(
            |(inst, slip, commission, max_dd, trigger, (step, min_d, extra), atr, choices)| {
                let base = SimConfig::default_for(Instrument::ALL[inst]);
                Setup {
                    config: SimConfig {
                        slippage_ticks: slip as f64,
                        commission_per_side: commission,
                        max_drawdown: max_dd,
                        breakeven_trigger_atr: trigger,
                        trail_step_atr: step,
                        trail_min_distance_atr: min_d,
                        trail_max_distance_atr: min_d + extra,
                        ..base
                    },
                    atr_ticks: atr,
                    choices,
                }
            },
        )
}

fn close_to(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * (1.0 + a.abs().max(b.abs()))
}

/// Checks everything that must hold between steps, given every trade closed so far.
fn check_account(sim: &Simulator, spec: &InstrumentSpec, mark: f64, trades: &[TradeRecord]) {
    let cfg = sim.config();
    let view = sim.position_view();
    let net: f64 = trades.iter().map(|t| t.net_pnl).sum();
    let open_commission = if view.is_flat() {
        0.0
    } else {
        cfg.commission_per_side
    };
    assert!(close_to(
        sim.balance() - cfg.starting_balance,
        net - open_commission
    ));
    assert!(close_to(
        sim.balance(),
        cfg.starting_balance + sim.realized_pnl() - sim.commissions()
    ));
    let open_pnl = if view.is_flat() {
        0.0
    } else {
        (mark - view.entry_price) * view.side as f64 * spec.point_value()
    };
    assert!(
        close_to(sim.equity(mark), sim.balance() + open_pnl),
        "equity != balance + open P&L"
    );
    assert_eq!(sim.trade_count() as usize, trades.len());
    if !view.is_flat() {
        for p in [
            view.entry_price,
            view.stop_price,
            view.target_price,
            view.best_price,
            view.worst_price,
        ] {
            assert!(spec.is_on_grid(p), "{p} off the grid in {view:?}");
        }
        let s = view.side as f64;
        assert!(s * (view.best_price - view.entry_price) >= 0.0);
        assert!(s * (view.worst_price - view.entry_price) <= 0.0);
    }
}

fn check_trade(t: &TradeRecord, spec: &InstrumentSpec, cfg: &SimConfig) {
    let moved =
        (t.exit_price - t.entry_price) * t.side as f64 * spec.point_value() * t.contracts as f64;
    assert!(close_to(t.gross_pnl, moved), "{t:?}");
    assert!(close_to(
        t.commission,
        2.0 * cfg.commission_per_side * t.contracts as f64
    ));
    assert!(close_to(t.net_pnl, t.gross_pnl - t.commission));
    assert!(spec.is_on_grid(t.entry_price) && spec.is_on_grid(t.exit_price));
    assert!(t.mae <= 1e-9 && t.mfe >= -1e-9);
    assert!(
        t.mae <= t.gross_pnl + 1e-6 && t.gross_pnl <= t.mfe + 1e-6,
        "{t:?}"
    );
}

/// The state a refused action must leave untouched.
fn snapshot(sim: &Simulator) -> (PositionView, Option<PendingOrder>, f64, bool) {
    (
        sim.position_view(),
        sim.pending(),
        sim.balance(),
        sim.is_breached(),
    )
}

/// Every action the mask allows is accepted and does what it says; every other
/// one is refused and changes nothing. Returns the allowed actions.
fn check_mask_contract(
    sim: &Simulator,
    spec: &InstrumentSpec,
    price: f64,
    atr: f64,
    ts: i64,
) -> Vec<Action> {
    let mask = sim.mask(price, atr, 6);
    assert!(mask.allows(Action::Hold));
    assert_eq!(sim.mask(price, atr, 3), mask.limited_to(3));
    let before = sim.position_view();
    let mut allowed = Vec::new();
    for action in Action::ALL {
        let mut probe = sim.clone();
        let result = probe.submit(action, price, atr, ts);
        if !mask.allows(action) {
            assert_eq!(result, Err(Refused { action }));
            assert_eq!(
                snapshot(&probe),
                snapshot(sim),
                "refused {action} changed the state"
            );
            continue;
        }
        allowed.push(action);
        let after = probe.position_view();
        let side = before.side as f64;
        match (action, result) {
            (Action::Hold, Ok(Submitted::Nothing)) => assert_eq!(snapshot(&probe), snapshot(sim)),
            (Action::Buy | Action::Sell, Ok(Submitted::OrderQueued)) => {
                let buy = action == Action::Buy;
                match probe.pending() {
                    Some(PendingOrder::Entry { side, .. }) => {
                        assert!(before.is_flat() && side == if buy { 1 } else { -1 })
                    }
                    Some(PendingOrder::Exit { reason, .. }) => {
                        assert_eq!(reason, ExitReason::Signal);
                        assert_eq!(before.side, if buy { -1 } else { 1 });
                    }
                    None => panic!("{action} queued nothing"),
                }
            }
            (_, Ok(Submitted::StopMoved { stop_price })) => {
                assert_eq!(after.stop_price, stop_price);
                assert!(spec.is_on_grid(stop_price));
                assert!(
                    side * (price - stop_price) >= spec.tick_size * 0.999,
                    "stop not behind price"
                );
                let moved = side * (stop_price - before.stop_price);
                match action {
                    Action::SlToBe => {
                        assert!(close_to(
                            stop_price,
                            before.entry_price + side * spec.tick_size
                        ));
                        assert!(moved > 0.0);
                    }
                    Action::TrailTighten => assert!(moved > 0.0),
                    Action::TrailLoosen => assert!(moved < 0.0),
                    _ => unreachable!(),
                }
            }
            (a, r) => panic!("allowed {a} gave {r:?}"),
        }
    }
    allowed
}

fn record(
    events: &SimEvents,
    trades: &mut Vec<TradeRecord>,
    spec: &InstrumentSpec,
    cfg: &SimConfig,
) {
    if let Some(t) = events.exit {
        check_trade(&t, spec, cfg);
        trades.push(t);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn ticks_keep_the_books_and_the_mask_contract(
        setup in setup(),
        steps in prop::collection::vec(-6i64..=6, 20..400),
        ticks_per_bar in 1usize..12,
        decision_noise in prop::collection::vec(-3i64..=3, 1..5),
    ) {
        let cfg = setup.config;
        let spec = cfg.instrument.spec();
        let mut sim = Simulator::new(cfg).unwrap();
        let mut trades = Vec::new();
        let mut price_ticks = 60_000i64;
        let mut decisions = 0usize;
        for (i, step) in steps.iter().enumerate() {
            price_ticks = (price_ticks + step).max(1);
            let price = spec.from_ticks(price_ticks);
            let before = sim.position_view();
            let pending = sim.pending();
            let had_pending = pending.is_some();
            let ev = sim.on_tick(&Tick { ts_ns: i as i64, price, size: 1.0, ..Tick::default() });
            if let (Some(fill), Some(PendingOrder::Entry { atr, .. })) = (ev.entry, pending) {
                // The bracket is at least as wide as asked, and less than a tick wider.
                let s = fill.side as f64;
                let slip = cfg.slippage_ticks * spec.tick_size;
                prop_assert!(close_to(fill.price, price + s * slip));
                for (leg, asked) in [
                    (s * (fill.price - fill.stop_price), cfg.stop_atr * atr),
                    (s * (fill.target_price - fill.price), cfg.target_atr * atr),
                ] {
                    let asked = asked.max(spec.tick_size);
                    prop_assert!(leg >= asked - 1e-9 && leg < asked + spec.tick_size, "{} vs {}", leg, asked);
                }
                prop_assert!(spec.is_on_grid(fill.stop_price) && spec.is_on_grid(fill.target_price));
            }
            if let (Some(t), false, false) = (ev.exit, had_pending, before.is_flat()) {
                let s = before.side as f64;
                let slip = cfg.slippage_ticks * spec.tick_size;
                match t.exit_reason {
                    ExitReason::Target => prop_assert_eq!(t.exit_price, before.target_price),
                    ExitReason::Stop => {
                        prop_assert!(s * (price - before.stop_price) <= 1e-9);
                        prop_assert!(close_to(t.exit_price, price - s * slip));
                    }
                    ExitReason::Drawdown => prop_assert!(close_to(t.exit_price, price - s * slip)),
                    r => prop_assert!(false, "unexpected exit {}", r),
                }
            }
            record(&ev, &mut trades, &spec, &cfg);
            check_account(&sim, &spec, price, &trades);
            if sim.is_breached() {
                prop_assert!(sim.position_view().is_flat());
                prop_assert_eq!(sim.mask(price, 1.0, 6), nq_runtime::ActionMask::HOLD_ONLY);
            }
            if (i + 1) % ticks_per_bar == 0 {
                sim.on_bar_close();
                let atr = setup.atr_ticks[decisions % setup.atr_ticks.len()] * spec.tick_size;
                // The decision price is usually the last trade, sometimes a little off it.
                let noise = decision_noise[decisions % decision_noise.len()];
                let decision_price = spec.from_ticks(price_ticks + noise);
                let ts = i as i64 + 1;
                let allowed = check_mask_contract(&sim, &spec, decision_price, atr, ts);
                let choice = setup.choices[decisions % setup.choices.len()] as usize;
                let action = allowed[choice % allowed.len()];
                prop_assert!(sim.submit(action, decision_price, atr, ts).is_ok());
                decisions += 1;
            }
        }
        if let Some(t) = sim.flatten(spec.from_ticks(price_ticks), 1 << 40, ExitReason::EndOfData) {
            check_trade(&t, &spec, &cfg);
            trades.push(t);
        }
        let net: f64 = trades.iter().map(|t| t.net_pnl).sum();
        prop_assert!(sim.position_view().is_flat());
        prop_assert!(close_to(net, sim.balance() - cfg.starting_balance));
    }

    #[test]
    fn bars_keep_the_books_and_take_the_stop_first(
        setup in setup(),
        moves in prop::collection::vec((-20i64..=20, -8i64..=8, 0i64..40, 0i64..40), 5..200),
    ) {
        let cfg = setup.config;
        let spec = cfg.instrument.spec();
        let mut sim = Simulator::new(cfg).unwrap();
        let mut trades = Vec::new();
        let mut close = 60_000i64;
        for (i, &(drift, gap, up, down)) in moves.iter().enumerate() {
            let open = (close + gap).max(100);
            close = (open + drift).max(100);
            let high = open.max(close) + up;
            let low = (open.min(close) - down).max(1);
            let bar = Bar {
                ts_ns: i as i64 * 60,
                open: spec.from_ticks(open),
                high: spec.from_ticks(high),
                low: spec.from_ticks(low),
                close: spec.from_ticks(close),
                volume: 1.0,
            };
            let before = sim.position_view();
            let settled = !before.is_flat() && sim.pending().is_none();
            let ev = sim.on_bar(&bar);
            if settled {
                let s = before.side as f64;
                let fav = |p: f64| s * (p - before.entry_price);
                let (open_f, stop_f, target_f) = (fav(bar.open), fav(before.stop_price), fav(before.target_price));
                let best_f = fav(bar.high).max(fav(bar.low));
                let worst_f = fav(bar.high).min(fav(bar.low));
                let stop_reached = worst_f <= stop_f;
                let target_reached = best_f > target_f;
                if open_f > stop_f && open_f <= target_f && stop_reached && target_reached {
                    let reason = ev.exit.map(|t| t.exit_reason);
                    prop_assert!(
                        matches!(reason, Some(ExitReason::Stop | ExitReason::Drawdown)),
                        "both in range must take the stop, got {:?}", reason
                    );
                }
                if open_f <= stop_f {
                    let t = ev.exit.unwrap();
                    prop_assert_eq!(t.exit_reason, ExitReason::Stop);
                    prop_assert!(close_to(t.exit_price, bar.open - s * cfg.slippage_ticks * spec.tick_size));
                }
                if let Some(t) = ev.exit.filter(|t| t.exit_reason == ExitReason::Target) {
                    prop_assert_eq!(t.exit_price, before.target_price);
                    prop_assert!(target_reached);
                }
            }
            record(&ev, &mut trades, &spec, &cfg);
            sim.on_bar_close();
            check_account(&sim, &spec, bar.close, &trades);
            let atr = setup.atr_ticks[i % setup.atr_ticks.len()] * spec.tick_size;
            let allowed = check_mask_contract(&sim, &spec, bar.close, atr, bar.ts_ns + 60);
            let action = allowed[setup.choices[i % setup.choices.len()] as usize % allowed.len()];
            prop_assert!(sim.submit(action, bar.close, atr, bar.ts_ns + 60).is_ok());
        }
        if let Some(t) = sim.flatten(spec.from_ticks(close), 1 << 40, ExitReason::SessionEnd) {
            check_trade(&t, &spec, &cfg);
            trades.push(t);
        }
        let net: f64 = trades.iter().map(|t| t.net_pnl).sum();
        prop_assert!(close_to(net, sim.balance() - cfg.starting_balance));
    }

    /// Arbitrary ticks, bars and calls never panic and keep the books consistent.
    #[test]
    fn garbage_never_panics(
        prices in prop::collection::vec(prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::INFINITY),
            1.0f64..1e6,
        ], 1..100),
        calls in prop::collection::vec((0u8..9, any::<f64>(), any::<i64>()), 1..100),
    ) {
        let cfg = SimConfig::default();
        let spec = cfg.instrument.spec();
        let mut sim = Simulator::new(cfg).unwrap();
        let mut trades = Vec::new();
        for (i, (&p, &(what, x, ts))) in prices.iter().cycle().zip(calls.iter()).enumerate() {
            let ev = match what {
                0 => sim.on_tick(&Tick { ts_ns: ts, price: p, size: x, ..Tick::default() }),
                1 => sim.on_bar(&Bar { ts_ns: ts, open: p, high: p.max(x), low: p.min(x), close: x, volume: 1.0 }),
                2 => { sim.on_bar_close(); SimEvents::default() }
                3 => SimEvents { exit: sim.flatten(p, ts, ExitReason::SessionEnd), ..SimEvents::default() },
                4 => { sim.flatten_on_next_fill(ExitReason::EndOfData); SimEvents::default() }
                5 => {
                    let report = PositionSync {
                        ts_ns: ts,
                        side: (ts % 3) as i8,
                        entry_price: p,
                        stop_price: (ts & 4 == 0).then_some(x),
                        target_price: (ts & 8 == 0).then_some(p * 1.01),
                        atr: x,
                    };
                    SimEvents { exit: sim.sync_position(&report), ..SimEvents::default() }
                }
                _ => {
                    let action = Action::ALL[i % 6];
                    let allowed = sim.mask(p, x, 6).allows(action);
                    prop_assert_eq!(sim.submit(action, p, x, ts).is_ok(), allowed);
                    SimEvents::default()
                }
            };
            if let Some(t) = ev.exit {
                trades.push(t);
            }
            prop_assert!(sim.balance().is_finite());
            let _ = sim.equity(p);
        }
        if let Some(t) = sim.flatten(f64::NAN, 0, ExitReason::EndOfData) {
            trades.push(t);
        }
        let net: f64 = trades.iter().map(|t| t.net_pnl).sum();
        prop_assert!((net - (sim.balance() - cfg.starting_balance)).abs() <= 1e-6 * (1.0 + net.abs()));
        let _ = spec;
    }
}
