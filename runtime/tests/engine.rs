//! The engine end to end on real NQ bars: decisions only where the spec allows
//! them, the mask respected, flat at every session end, ticks and bars giving
//! the same observations, mismatched checkpoints refused naming both sides,
//! and live fills steering the position.

mod real_data;

#[path = "policy_common/mod.rs"]
mod policy_common;

use nq_formats::checkpoint::Activation;
use nq_formats::{Action, ActionSet, Bar, Instrument, Side, SimConfig, Tick};
use nq_runtime::engine::{
    Decision, DecisionKind, DrawdownScope, Engine, EngineConfig, EngineError, FillReport, Sampling,
};
use nq_runtime::policy::{Checkpoint, Policy};
use nq_runtime::sim::ExitReason;
use policy_common::Buffer;

fn real_bars() -> Vec<Bar> {
    real_data::nq_1min_bars()
}

/// Four ticks per bar (open, high, low, close) spread inside the minute, so
/// that the bars the engine builds from them are the original bars.
fn ticks_of(bars: &[Bar]) -> Vec<Tick> {
    let mut out = Vec::with_capacity(bars.len() * 4);
    for b in bars {
        let quarter = (b.volume / 4.0).floor();
        let sizes = [b.volume - 3.0 * quarter, quarter, quarter, quarter];
        for (k, (price, size)) in [b.open, b.high, b.low, b.close]
            .into_iter()
            .zip(sizes)
            .enumerate()
        {
            out.push(Tick {
                ts_ns: b.ts_ns + k as i64 * 10_000_000_000,
                price,
                size,
                side: Side::None,
            });
        }
    }
    out
}

fn checkpoint(phase: u8, seed: u64) -> Buffer {
    Buffer::new(
        &policy_common::valid_file(phase, &[32, 32], Activation::Tanh, seed),
        0,
    )
}

fn engine(buffer: &Buffer) -> Engine<'_> {
    Engine::from_checkpoint_bytes(buffer.bytes()).expect("valid checkpoint")
}

/// An engine without the trailing drawdown, so that a random policy keeps
/// trading through the whole file.
fn engine_without_drawdown(buffer: &Buffer) -> Engine<'_> {
    let policy = Policy::from_checkpoint(&Checkpoint::parse(buffer.bytes()).unwrap()).unwrap();
    let mut config = EngineConfig::from_policy(&policy);
    config.sim.max_drawdown = 0.0;
    Engine::new(policy, config).unwrap()
}

fn run_bars(engine: &mut Engine<'_>, bars: &[Bar]) -> Vec<(Decision, Vec<f32>)> {
    let mut out = Vec::new();
    for bar in bars {
        if let Some(d) = engine.on_bar(bar).expect("valid bar").decision {
            out.push((d, engine.observation().to_vec()));
        }
    }
    out
}

#[test]
fn decisions_respect_mask_session_and_warm_up() {
    let bars = real_bars();
    for phase in [1u8, 2] {
        let buffer = checkpoint(phase, 11);
        let mut engine = engine_without_drawdown(&buffer);
        let calendar = nq_runtime::calendar::SessionCalendar::new(SimConfig::default().session);
        let decisions = run_bars(&mut engine, &bars);
        let policy: Vec<_> = decisions
            .iter()
            .filter(|(d, _)| d.kind == DecisionKind::Policy)
            .collect();
        assert!(
            policy.len() > 1000,
            "phase {phase}: {} decisions",
            policy.len()
        );
        let mut kinds_seen = [0usize; 3];
        let mut traded = 0;
        for (d, obs) in &decisions {
            kinds_seen[d.kind as usize] += 1;
            if d.kind == DecisionKind::Policy {
                assert!(
                    calendar.session_at(d.bar_ts_ns).is_some(),
                    "decision outside RTH"
                );
            }
            assert_eq!(obs.len(), if phase == 1 { 225 } else { 231 });
            assert!(obs.iter().all(|x| x.is_finite()));
            assert!(d.mask.allows(Action::Hold));
            assert!(d.mask.allows(d.action), "{d:?}");
            let total: f32 = d.probs().iter().sum();
            assert!((total - 1.0).abs() < 1e-5, "{d:?}");
            for (code, &p) in d.probs().iter().enumerate() {
                let allowed = d.mask.allows(Action::from_code(code as u8).unwrap());
                assert!(allowed || p == 0.0, "masked action with probability {p}");
            }
            match d.kind {
                DecisionKind::SessionEnd => assert_eq!(d.target_position, 0),
                DecisionKind::Policy => {
                    if d.target_position != d.position {
                        traded += 1;
                    }
                    if d.target_position != 0 {
                        let (stop, target) = (d.stop_price.unwrap(), d.target_price.unwrap());
                        let side = d.target_position as f64;
                        assert!((d.close - stop) * side > 0.0 && (target - d.close) * side > 0.0);
                    }
                }
                DecisionKind::DrawdownBreached => assert_eq!(d.action, Action::Hold),
            }
        }
        assert!(traded > 10, "phase {phase}: the random policy should trade");
        assert!(
            kinds_seen[DecisionKind::SessionEnd as usize] >= 9,
            "one per RTH day"
        );
        // The first decision waits for the 132-bar warm-up.
        let first = decisions[0].0.bar_ts_ns;
        let warm_up_end = bars[131].ts_ns;
        assert!(first >= warm_up_end);
        // Flat after every session end: the next decision starts flat.
        for pair in decisions.windows(2) {
            if pair[0].0.kind == DecisionKind::SessionEnd {
                assert_eq!(pair[1].0.position, 0, "{:?}", pair[1].0);
            }
        }
    }
}

#[test]
fn same_input_same_decisions() {
    let bars = real_bars();
    let buffer = checkpoint(2, 5);
    let a = run_bars(&mut engine(&buffer), &bars[..3000]);
    let b = run_bars(&mut engine(&buffer), &bars[..3000]);
    assert_eq!(a, b);
}

#[test]
fn ticks_and_bars_give_the_same_observations() {
    let bars = &real_bars()[..2500];
    let buffer = checkpoint(1, 21);
    let by_bar = run_bars(&mut engine_without_drawdown(&buffer), bars);
    let mut tick_engine = engine_without_drawdown(&buffer);
    let mut by_tick = Vec::new();
    for tick in ticks_of(bars) {
        if let Some(d) = tick_engine.on_tick(&tick).expect("valid tick").decision {
            by_tick.push((d, tick_engine.observation().to_vec()));
        }
    }
    if let Some(d) = tick_engine.flush(i64::MAX).decision {
        by_tick.push((d, tick_engine.observation().to_vec()));
    }
    // Fills differ (next tick against next open), so compare until the first
    // trade; the market part of the observation must agree everywhere.
    assert_eq!(by_bar.len(), by_tick.len());
    let mut compared = 0;
    for ((b, bo), (t, to)) in by_bar.iter().zip(&by_tick) {
        assert_eq!(b.bar_ts_ns, t.bar_ts_ns);
        // `observation()` is the last *policy* decision's.
        if b.kind == DecisionKind::Policy && t.kind == DecisionKind::Policy {
            assert_eq!(bo[..220], to[..220], "market features at {}", b.bar_ts_ns);
            compared += 1;
        }
    }
    assert!(compared > 500, "{compared}");
    let first_trade = by_bar
        .iter()
        .position(|(d, _)| d.target_position != d.position)
        .unwrap();
    assert_eq!(by_bar[..=first_trade], by_tick[..=first_trade]);
}

#[test]
fn a_bad_tick_is_refused_and_changes_nothing() {
    let bars = &real_bars()[..400];
    let buffer = checkpoint(1, 2);
    let mut clean = engine(&buffer);
    let mut dirty = engine(&buffer);
    let ticks = ticks_of(bars);
    for (i, tick) in ticks.iter().enumerate() {
        let a = clean.on_tick(tick).unwrap();
        let b = dirty.on_tick(tick).unwrap();
        assert_eq!(a, b);
        if i % 50 == 7 {
            for bad in [
                Tick {
                    price: f64::NAN,
                    ..*tick
                },
                Tick {
                    price: -1.0,
                    ..*tick
                },
                Tick {
                    size: -3.0,
                    ..*tick
                },
                Tick {
                    ts_ns: tick.ts_ns - 1,
                    ..*tick
                },
            ] {
                assert!(dirty.on_tick(&bad).is_err(), "{bad:?}");
            }
        }
    }
}

#[test]
fn mismatched_checkpoints_are_refused_naming_both_sides() {
    let buffer = checkpoint(1, 1);
    let policy = || Policy::from_checkpoint(&Checkpoint::parse(buffer.bytes()).unwrap()).unwrap();
    let base = EngineConfig::from_policy(&policy());

    let es = EngineConfig {
        sim: SimConfig::default_for(Instrument::Es),
        ..base
    };
    let err = Engine::new(policy(), es).err().unwrap();
    assert!(matches!(err, EngineError::InstrumentMismatch { .. }));
    let text = err.to_string();
    assert!(text.contains("NQ") && text.contains("ES"), "{text}");

    let five_minutes = EngineConfig {
        sim: SimConfig {
            bar_seconds: 300,
            ..base.sim
        },
        ..base
    };
    let text = Engine::new(policy(), five_minutes)
        .err()
        .unwrap()
        .to_string();
    assert!(text.contains("60") && text.contains("300"), "{text}");

    let phase2 = EngineConfig {
        actions: Some(ActionSet::Phase2),
        ..base
    };
    let text = Engine::new(policy(), phase2).err().unwrap().to_string();
    assert!(
        text.contains("HOLD,BUY,SELL (3)") && text.contains("(6)"),
        "{text}"
    );
}

#[test]
fn reported_fills_set_the_position_the_policy_sees() {
    let bars = real_bars();
    let buffer = checkpoint(2, 9);
    let mut engine = engine(&buffer);
    let mut reported = false;
    for bar in &bars[..1500] {
        let Some(d) = engine.on_bar(bar).expect("valid bar").decision else {
            continue;
        };
        if reported {
            // The decision right after the report sees the reported long.
            assert_eq!(d.position, 1, "{d:?}");
            assert!(!d.mask.allows(Action::Buy));
            assert_eq!(engine.observation()[220], 1.0, "position_side feature");
            break;
        }
        if d.kind == DecisionKind::Policy && d.position == 0 && d.target_position == 0 {
            engine
                .on_fill(&FillReport {
                    ts_ns: d.ts_ns,
                    position: 1,
                    entry_price: d.close,
                    stop_price: Some(d.close - 20.0),
                    target_price: Some(d.close + 40.0),
                })
                .unwrap();
            assert_eq!(engine.simulator().position_side(), 1);
            reported = true;
        }
    }
    assert!(reported);
    let bad = FillReport {
        ts_ns: 0,
        position: 1,
        entry_price: 100.0,
        stop_price: Some(110.0),
        target_price: None,
    };
    assert!(engine.on_fill(&bad).is_err());
    assert!(engine.on_fill(&FillReport { position: 2, ..bad }).is_err());
}

/// A position reported before the engine has an ATR, without a stop or a
/// target, gets the engine's ATR bracket once bars come, as an entry would:
/// never legs out of any market's reach, which decisions would hand out as
/// the stop and target to work.
#[test]
fn a_position_reported_before_any_bar_gets_its_bracket_from_the_first_atr() {
    // From the first RTH open on (the checkpoints trade RTH; a position held
    // outside the session is closed by the first bar).
    let all = real_bars();
    let open = all
        .iter()
        .position(|b| {
            (b.ts_ns - 5 * 3_600_000_000_000).rem_euclid(86_400_000_000_000) == 570 * 60_000_000_000
        })
        .unwrap();
    let bars = &all[open..];
    let buffer = checkpoint(2, 9);
    let mut engine = engine(&buffer);
    let entry = bars[0].open;
    engine
        .on_fill(&FillReport {
            ts_ns: bars[0].ts_ns,
            position: 1,
            entry_price: entry,
            stop_price: None,
            target_price: None,
        })
        .unwrap();
    let view = engine.simulator().position_view();
    assert!(view.stop_price < 0.0, "no ATR yet: out of reach ({view:?})");
    let mut hold = |_: nq_runtime::ActionMask, _: i8| Action::Hold;
    engine.on_bar_with(&bars[0], &mut hold).unwrap();
    let view = engine.simulator().position_view();
    let first_atr = engine.features().last_bar().atr;
    let (stop, target) = engine.simulator().bracket(1, entry, first_atr).unwrap();
    assert_eq!((view.stop_price, view.target_price), (stop, target));
    assert!(0.0 < stop && stop < entry && entry < target);
    // The legs work: the position ends at one of them during the warm-up,
    // or the first decision hands them out.
    for bar in &bars[1..] {
        let step = engine.on_bar_with(bar, &mut hold).unwrap();
        if let Some(decision) = step.decision {
            assert_eq!(decision.position, 1);
            assert_eq!(decision.stop_price, Some(stop), "{decision:?}");
            assert_eq!(decision.target_price, Some(target));
            return;
        }
        if let Some(&exit) = step.exits().next() {
            assert!(
                matches!(exit.exit_reason, ExitReason::Stop | ExitReason::Target),
                "{exit:?}"
            );
            return;
        }
    }
    panic!("neither a decision nor an exit");
}

/// A fill the engine says it took is the position it holds: a price it
/// cannot hold is refused, not swapped for the last price.
#[test]
fn a_fill_at_a_price_the_engine_cannot_hold_is_refused() {
    let bars = real_bars();
    let buffer = checkpoint(1, 3);
    let mut engine = engine(&buffer);
    engine.on_bar(&bars[0]).unwrap();
    for price in [1e20, f64::MAX, 1e-300] {
        let fill = FillReport {
            ts_ns: bars[0].ts_ns + 60_000_000_000,
            position: 1,
            entry_price: price,
            stop_price: None,
            target_price: None,
        };
        assert!(engine.on_fill(&fill).is_err(), "entry {price}");
        let bracket = FillReport {
            entry_price: bars[0].close,
            stop_price: Some(price.min(bars[0].close / 2.0)),
            target_price: Some(1e20),
            ..fill
        };
        assert!(engine.on_fill(&bracket).is_err(), "target 1e20");
        assert_eq!(engine.simulator().position_side(), 0);
    }
}

#[test]
fn sampling_is_seeded() {
    let bars = &real_bars()[..2000];
    let buffer = checkpoint(1, 4);
    let policy = || Policy::from_checkpoint(&Checkpoint::parse(buffer.bytes()).unwrap()).unwrap();
    let run = |seed| {
        let config = EngineConfig {
            sampling: Sampling::Sample { seed },
            ..EngineConfig::from_policy(&policy())
        };
        let mut engine = Engine::new(policy(), config).unwrap();
        run_bars(&mut engine, bars)
            .into_iter()
            .map(|(d, _)| d.action)
            .collect::<Vec<_>>()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

/// New York date of a UTC timestamp in this EST-only file (UTC-5).
fn ny_day(ts_ns: i64) -> i64 {
    (ts_ns - 5 * 3_600_000_000_000).div_euclid(86_400_000_000_000)
}

fn engine_with_drawdown(buffer: &Buffer, drawdown: DrawdownScope) -> Engine<'_> {
    let policy = Policy::from_checkpoint(&Checkpoint::parse(buffer.bytes()).unwrap()).unwrap();
    let config = EngineConfig {
        drawdown,
        ..EngineConfig::from_policy(&policy)
    };
    Engine::new(policy, config).unwrap()
}

/// SPEC 6: a breach ends the episode, and episodes are sessions. The rest of
/// that session is HOLD; the next one trades again, its drawdown measured
/// from the equity it starts with.
#[test]
fn a_drawdown_breach_ends_the_session_and_the_next_one_trades_again() {
    let bars = real_bars();
    let buffer = checkpoint(1, 11);
    let mut engine = engine_with_drawdown(&buffer, DrawdownScope::Session);
    let decisions = run_bars(&mut engine, &bars);
    let breached_days: Vec<i64> = decisions
        .iter()
        .filter(|(d, _)| d.kind == DecisionKind::DrawdownBreached)
        .map(|(d, _)| ny_day(d.ts_ns))
        .collect();
    assert!(
        !breached_days.is_empty(),
        "a random policy with a $2,500 limit breaches on two weeks of NQ"
    );
    let first = breached_days[0];
    for (d, _) in &decisions {
        let day = ny_day(d.ts_ns);
        if breached_days.contains(&day) {
            // After the breach on that day: nothing but HOLD.
            let breach_ts = decisions
                .iter()
                .find(|(b, _)| b.kind == DecisionKind::DrawdownBreached && ny_day(b.ts_ns) == day)
                .unwrap()
                .0
                .ts_ns;
            if d.ts_ns >= breach_ts {
                assert_ne!(d.kind, DecisionKind::Policy, "{d:?}");
                assert_eq!((d.action, d.target_position), (Action::Hold, 0));
            }
        }
    }
    let later_policy = decisions
        .iter()
        .filter(|(d, _)| d.kind == DecisionKind::Policy && ny_day(d.ts_ns) > first)
        .count();
    assert!(
        later_policy > 300,
        "the sessions after the breach trade: {later_policy}"
    );
    // The account carries on: equity on the next day starts where the
    // breach left it (flat, nothing traded after it), not at the starting
    // balance.
    let left = decisions
        .iter()
        .rfind(|(d, _)| ny_day(d.ts_ns) == first)
        .unwrap()
        .0
        .equity;
    let next = decisions
        .iter()
        .find(|(d, _)| ny_day(d.ts_ns) > first && d.kind == DecisionKind::Policy)
        .unwrap();
    assert_eq!(next.0.equity, left, "{:?}", next.0);
    assert!(left < 50_000.0 - 1_000.0, "{left}");
}

#[test]
fn with_engine_scope_a_drawdown_breach_stops_trading_for_good() {
    let bars = real_bars();
    let buffer = checkpoint(1, 11);
    let mut engine = engine_with_drawdown(&buffer, DrawdownScope::Engine);
    let decisions = run_bars(&mut engine, &bars);
    let first = decisions
        .iter()
        .position(|(d, _)| d.kind == DecisionKind::DrawdownBreached)
        .expect("a random policy with a $2,500 limit breaches on two weeks of NQ");
    for (d, _) in &decisions[first..] {
        assert_ne!(d.kind, DecisionKind::Policy);
        assert_eq!((d.action, d.target_position), (Action::Hold, 0));
    }
    let (d, _) = &decisions[first];
    assert!(
        d.equity <= 50_000.0 - 2_500.0 + 1e-9 || d.position == 0,
        "{d:?}"
    );
}

#[test]
fn engines_on_other_threads_share_one_checkpoint_and_agree() {
    let buffer = checkpoint(1, 7);
    let bars = real_bars();
    let here = run_bars(&mut engine(&buffer), &bars);
    // One read-only checkpoint, an engine per thread (one per account), and
    // an engine built here then moved: the threading model the integration
    // guide promises.
    let (buffer, bars) = (&buffer, &bars[..]);
    let mut moved = engine(buffer);
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| run_bars(&mut engine(buffer), bars));
        let b = s.spawn(move || run_bars(&mut moved, bars));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(here.len() > 100, "{} decisions", here.len());
    assert_eq!(a, here);
    assert_eq!(b, here);
}

#[test]
fn preparing_the_next_decision_changes_no_decision_and_is_used() {
    let bars = &real_bars()[..6000];
    let buffer = Buffer::new(
        &policy_common::valid_file(2, &[64, 64], Activation::Tanh, 8),
        0,
    );
    let plain = run_bars(&mut engine_without_drawdown(&buffer), bars);

    // Bars, preparing after every decision as a live system would.
    let mut prepared_engine = engine_without_drawdown(&buffer);
    let mut prepared = Vec::new();
    for bar in bars {
        if let Some(d) = prepared_engine.on_bar(bar).unwrap().decision {
            prepared.push((d, prepared_engine.observation().to_vec()));
            prepared_engine.prepare_next_decision();
        }
    }
    assert_eq!(prepared, plain);
    let decisions = prepared_engine.decision_count();
    assert!(decisions > 1000, "{decisions}");
    // Only a bar without a decision in between (session changes) leaves the
    // prepared sums stale.
    assert!(
        prepared_engine.prepared_decisions() * 100 >= decisions * 95,
        "{} of {decisions}",
        prepared_engine.prepared_decisions()
    );

    // Ticks, preparing after every tick (wasteful, but never wrong), and an
    // engine that never prepares uses nothing.
    let mut by_tick = engine_without_drawdown(&buffer);
    let mut never = engine_without_drawdown(&buffer);
    for tick in ticks_of(&bars[..1500]) {
        let d = by_tick.on_tick(&tick).expect("valid tick");
        by_tick.prepare_next_decision();
        assert_eq!(d, never.on_tick(&tick).expect("valid tick"));
        assert_eq!(by_tick.observation(), never.observation());
    }
    assert_eq!(never.prepared_decisions(), 0);
    assert!(by_tick.prepared_decisions() * 100 >= by_tick.decision_count() * 95);
}
