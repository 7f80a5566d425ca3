//! `Engine::on_bar_with` / `on_tick_with`: an external decision rule replaces
//! the policy's choice (the baselines of `nq-eval`), under the same mask, fills
//! and session rules.

mod real_data;

#[path = "policy_common/mod.rs"]
mod policy_common;

use nq_formats::checkpoint::Activation;
use nq_formats::{Action, Bar, Side, Tick};
use nq_runtime::engine::{DecisionKind, Engine};
use nq_runtime::sim::ExitReason;
use nq_runtime::ActionMask;
use policy_common::Buffer;

fn checkpoint() -> Buffer {
    Buffer::new(
        &policy_common::valid_file(1, &[32, 32], Activation::Tanh, 3),
        0,
    )
}

fn bars() -> Vec<Bar> {
    real_data::nq_1min_bars()
}

fn buy_when_flat(mask: ActionMask, position: i8) -> Action {
    if position == 0 && mask.allows(Action::Buy) {
        Action::Buy
    } else {
        Action::Hold
    }
}

#[test]
fn the_chooser_decides_within_the_mask() {
    let buffer = checkpoint();
    let mut engine = Engine::from_checkpoint_bytes(buffer.bytes()).unwrap();
    let mut seen = 0;
    let mut entries = 0;
    for bar in bars() {
        let mut asked = None;
        let step = engine
            .on_bar_with(&bar, &mut |mask, position| {
                asked = Some((mask, position));
                buy_when_flat(mask, position)
            })
            .unwrap();
        if let Some(entry) = step.entry {
            entries += 1;
            assert_eq!(entry.side, 1, "only longs");
        }
        let Some(d) = step.decision else { continue };
        if d.kind != DecisionKind::Policy {
            continue;
        }
        let (mask, position) = asked.expect("the chooser was asked");
        assert_eq!(mask, d.mask);
        assert_eq!(position, d.position);
        assert_eq!(d.action, buy_when_flat(mask, position));
        seen += 1;
    }
    assert!(
        seen > 100 && entries > 0,
        "{seen} decisions, {entries} entries"
    );
}

#[test]
fn a_choice_outside_the_mask_is_hold_and_trades_nothing() {
    let buffer = checkpoint();
    let mut engine = Engine::from_checkpoint_bytes(buffer.bytes()).unwrap();
    let mut decisions = 0;
    for bar in bars() {
        // Phase 1 has no TRAIL_TIGHTEN.
        let step = engine
            .on_bar_with(&bar, &mut |_, _| Action::TrailTighten)
            .unwrap();
        if let Some(d) = step.decision {
            assert_eq!(d.action, Action::Hold);
            decisions += 1;
        }
        assert!(step.entry.is_none());
    }
    assert!(decisions > 0);
    assert_eq!(engine.simulator().trade_count(), 0);
}

#[test]
fn ticks_and_bars_take_the_same_choices() {
    let buffer = checkpoint();
    let all = bars();
    let mut by_bar = Engine::from_checkpoint_bytes(buffer.bytes()).unwrap();
    let mut by_tick = Engine::from_checkpoint_bytes(buffer.bytes()).unwrap();
    let mut from_bars = Vec::new();
    let mut from_ticks = Vec::new();
    for bar in &all {
        if let Some(d) = by_bar
            .on_bar_with(bar, &mut |_, _| Action::Hold)
            .unwrap()
            .decision
        {
            from_bars.push((d.ts_ns, d.action));
        }
        let tick = Tick {
            ts_ns: bar.ts_ns,
            price: bar.close,
            size: bar.volume,
            side: Side::None,
        };
        if let Some(d) = by_tick
            .on_tick_with(&tick, &mut |_, _| Action::Hold)
            .unwrap()
            .decision
        {
            from_ticks.push((d.ts_ns, d.action));
        }
    }
    assert!(from_bars.len() > 100);
    // Ticks close a bar one tick late, so the last bar has no decision yet.
    assert_eq!(&from_bars[..from_ticks.len()], &from_ticks[..]);
}

#[test]
fn end_of_data_closes_the_open_position() {
    let buffer = checkpoint();
    let mut engine = Engine::from_checkpoint_bytes(buffer.bytes()).unwrap();
    let all = bars();
    // Stop in the middle of a session, right after an entry filled.
    let mut last_ts = 0;
    let mut entry_commission = 0.0;
    for bar in &all {
        let step = engine.on_bar_with(bar, &mut buy_when_flat).unwrap();
        last_ts = bar.ts_ns;
        if let Some(entry) = step.entry {
            entry_commission = entry.commission;
        }
        if engine.simulator().position_side() == 1 {
            break;
        }
    }
    assert_eq!(engine.simulator().position_side(), 1);
    let balance_before = engine.simulator().balance();
    let step = engine.end_of_data(last_ts);
    let trade = *step.exits().next().expect("a trade is closed");
    assert_eq!(step.exits().count(), 1);
    assert_eq!(trade.exit_reason, ExitReason::EndOfData);
    assert_eq!(trade.exit_ts_ns, last_ts);
    assert_eq!(step.account.position, 0);
    assert_eq!(engine.simulator().position_side(), 0);
    // The entry's commission left the balance when it filled.
    let change = engine.simulator().balance() - balance_before;
    assert!((change - trade.net_pnl - entry_commission).abs() < 1e-6);
    assert_eq!(
        engine.end_of_data(last_ts).exits().count(),
        0,
        "nothing left to close"
    );
}
