//! The game a policy trains on is the game it is evaluated on: the same bars
//! and the same actions through the trainer's environment (episodes of the
//! runtime's `BarStepper` over precomputed features) and through the
//! `Engine` that nq-eval, nq-signal and the C ABI drive give the same trades
//! (every field), the same P&L at every step and the same account at every
//! decision. On real data: NQ 1-minute bars with the Thanksgiving early
//! close (Globex hours and an RTH-only cut, which has no bar after the
//! session ends), and ES 1-minute bars across the March 2023 DST change;
//! with and without the drawdown limit; actions from a trained policy,
//! random valid ones, and phase 2's position management with forced-position
//! starts. Then nq-train's held-out summary against nq-eval's own replay of
//! the same bars from a Parquet file.

use std::cell::Cell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nq_formats::{Action, Bar, Instrument, SimConfig};
use nq_runtime::calendar::SessionCalendar;
use nq_runtime::engine::EngineConfig;
use nq_runtime::policy::{Checkpoint as RtCheckpoint, Policy, PolicyScratch, Rng as RtRng};
use nq_runtime::sim::TradeRecord;
use nq_runtime::ActionMask;
use nq_tools::checkpoint_file::CheckpointFile;
use nq_trainer::env::{EnvSchedule, EnvState, EpisodeLog, MarketData, MarketEnv};
use nq_trainer::rng::Rng;
use nq_trainer::train::{train, RunOptions};
use nq_trainer::{CpuBackend, TrainConfig};

/// How the actions are picked.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Actions {
    /// The trained checkpoint, greedy, through the runtime's forward.
    Policy,
    /// A seeded uniform draw among the allowed actions.
    Random(u64),
}

struct Case {
    name: &'static str,
    bars: Vec<Bar>,
    sim: SimConfig,
}

fn cases() -> Vec<Case> {
    let nq = nq_test_support::nq_1min_bars();
    let rth = SessionCalendar::new(nq_formats::SessionHours::RTH);
    let nq_rth: Vec<Bar> = nq
        .iter()
        .copied()
        .filter(|b| rth.session_at(b.ts_ns).is_some())
        .collect();
    let es = nq_test_support::es_1min_bars();
    let nq_sim = SimConfig::default_for(Instrument::Nq);
    let es_sim = SimConfig::default_for(Instrument::Es);
    let mut out = Vec::new();
    for limit in [0.0, 2_500.0] {
        let nq_sim = SimConfig {
            max_drawdown: limit,
            ..nq_sim
        };
        let es_sim = SimConfig {
            max_drawdown: limit,
            ..es_sim
        };
        out.push(Case {
            name: "NQ 1-min, Globex hours",
            bars: nq.clone(),
            sim: nq_sim,
        });
        out.push(Case {
            name: "NQ 1-min, RTH only",
            bars: nq_rth.clone(),
            sim: nq_sim,
        });
        out.push(Case {
            name: "ES 1-min, across DST",
            bars: es.clone(),
            sim: es_sim,
        });
    }
    out
}

/// A checkpoint trained for a few updates on `bars` with `sim` (phase 2
/// from a phase-1 one): a real policy, and the engine's settings.
fn trained_checkpoint(dir: &Path, bars: &[Bar], sim: &SimConfig, phase: u8) -> PathBuf {
    let data = Arc::new(MarketData::from_bars(bars.to_vec(), sim).unwrap());
    let mut cfg = TrainConfig {
        phase,
        seed: 7,
        num_envs: 8,
        num_steps: 32,
        updates: 2,
        hidden: vec![32, 32],
        env_threads: 1,
        checkpoint_every: 1000,
        monitor_every: 1000,
        holdout_sessions: 0,
        ..TrainConfig::default()
    };
    cfg.sim.instrument = sim.instrument.symbol().to_string();
    cfg.sim.max_drawdown = sim.max_drawdown;
    cfg.curriculum.p2_commission_end = cfg.sim.commission_per_side;
    let init = (phase == 2).then(|| trained_checkpoint(&dir.join("p1"), bars, sim, 1));
    let opts = RunOptions {
        out: dir.join(format!("phase{phase}")),
        init,
        ..RunOptions::default()
    };
    train::<CpuBackend>(&cfg, data, &opts, &Default::default())
        .unwrap()
        .checkpoint
}

/// What one side saw: the trades in order, and per decision bar (its
/// start) the action taken there and the P&L from that decision to the
/// next (or to the episode's end).
#[derive(Debug, Default)]
struct Game {
    trades: Vec<TradeRecord>,
    actions: HashMap<i64, Action>,
    pnl: Vec<(i64, f64)>,
}

/// Every session of `data` as one episode of the trainer's environment,
/// from its first decision (a forced position on alternate sessions when
/// `forced`), with `actions`.
fn trained(
    data: &Arc<MarketData>,
    sim: &SimConfig,
    phase: u8,
    checkpoint: &[u8],
    actions: Actions,
    forced: bool,
) -> Game {
    let mut env = MarketEnv::new(data.clone(), *sim, phase, false, 0, Rng::stream(1, 0)).unwrap();
    env.set_schedule(EnvSchedule {
        commission: sim.commission_per_side,
        ..EnvSchedule::default()
    })
    .unwrap();
    let dim = nq_runtime::features::observation_len(phase);
    let (mut obs, mut last_obs) = (vec![0.0f32; dim], vec![0.0f32; dim]);
    let policy = Policy::from_checkpoint(&RtCheckpoint::parse(checkpoint).unwrap()).unwrap();
    let mut scratch = PolicyScratch::new();
    let mut rng = RtRng::new(match actions {
        Actions::Random(seed) => seed,
        Actions::Policy => 0,
    });
    let mut game = Game::default();
    for (k, span) in data.sessions.iter().enumerate() {
        let forced_side = match (forced && span.first_decision < span.last_decision, k % 4) {
            (true, 0) => 1,
            (true, 2) => -1,
            _ => 0,
        };
        let state = EnvState {
            rng: [1, 2, 3, 4],
            episode: EpisodeLog {
                session: k,
                start: span.first_decision,
                forced_side,
                commission: sim.commission_per_side,
                actions: Vec::new(),
            },
            episode_bonus_bits: 0,
        };
        let mut mask = env.restore(&state, &mut obs).unwrap();
        game.trades.extend(env.start_step().exits().copied());
        if forced_side != 0 {
            let side = if forced_side > 0 {
                Action::Buy
            } else {
                Action::Sell
            };
            game.actions
                .insert(data.bars[span.first_decision].ts_ns, side);
        }
        loop {
            let allowed = mask;
            let action = match actions {
                Actions::Policy => policy
                    .forward(&obs, allowed, &mut scratch)
                    .unwrap()
                    .argmax(),
                Actions::Random(_) => {
                    let legal: Vec<Action> = Action::ALL
                        .into_iter()
                        .filter(|a| allowed.allows(*a))
                        .collect();
                    legal[(rng.next_u64() % legal.len() as u64) as usize]
                }
            };
            let (reward, terminated, truncated, next) =
                env.step(action.code(), &mut obs, &mut last_obs);
            let step = env.last_step();
            let decision = *env
                .last_decision()
                .expect("every step starts with a decision");
            assert_eq!(decision.action, action, "the mask allowed it");
            game.actions.insert(decision.bar_ts_ns, decision.action);
            game.trades.extend(step.exits().copied());
            game.pnl.push((decision.bar_ts_ns, reward));
            assert!(!truncated);
            if terminated {
                break;
            }
            mask = next;
        }
    }
    game
}

/// The same bars through the engine, the decisions taken from `actions`
/// (HOLD where the trainer made none); the P&L of a decision is the
/// account's change from its bar's step to the next bar's.
fn evaluated(
    bars: &[Bar],
    sim: &SimConfig,
    checkpoint: &Path,
    actions: &HashMap<i64, Action>,
) -> Game {
    let file = CheckpointFile::read(checkpoint).unwrap();
    let config = EngineConfig {
        sim: *sim,
        ..EngineConfig::from_policy(&file.policy().unwrap())
    };
    let mut engine = file.engine(Some(config)).unwrap();
    let current = Cell::new(0i64);
    let mut choose =
        |_: ActionMask, _: i8| actions.get(&current.get()).copied().unwrap_or(Action::Hold);
    let mut game = Game::default();
    let mut pending: Option<(i64, f64)> = None;
    for bar in bars {
        current.set(bar.ts_ns);
        let step = engine.on_bar_with(bar, &mut choose).unwrap();
        if let Some((ts, before)) = pending.take() {
            game.pnl.push((ts, step.account.equity - before));
        }
        game.trades.extend(step.exits().copied());
        if let Some(d) = step.decision.filter(|d| actions.contains_key(&d.bar_ts_ns)) {
            game.actions.insert(d.bar_ts_ns, d.action);
            pending = Some((d.bar_ts_ns, step.account.equity));
        }
    }
    game
}

fn assert_same_game(name: &str, trained: &Game, evaluated: &Game) {
    assert!(!trained.trades.is_empty(), "{name}: no trade to compare");
    assert_eq!(
        trained.trades.len(),
        evaluated.trades.len(),
        "{name}: trade count"
    );
    for (i, (t, e)) in trained.trades.iter().zip(&evaluated.trades).enumerate() {
        assert_eq!(t, e, "{name}: trade {i}");
    }
    assert_eq!(trained.actions, evaluated.actions, "{name}: decisions");
    let by_bar: HashMap<i64, f64> = evaluated.pnl.iter().copied().collect();
    assert!(
        trained.pnl.len() > 1_000,
        "{name}: {} steps",
        trained.pnl.len()
    );
    for (ts, pnl) in &trained.pnl {
        let e = by_bar
            .get(ts)
            .unwrap_or_else(|| panic!("{name}: no engine step after the decision at {ts}"));
        // The episode starts at the starting balance, the engine's account
        // carries on: the same dollars, up to the last bit of a sum.
        assert!(
            (pnl - e).abs() < 1e-6,
            "{name}: P&L of the decision at {ts}: {pnl} vs {e}"
        );
    }
}

#[test]
fn the_trainers_game_is_the_engines_game() {
    let tmp = tempfile::tempdir().unwrap();
    let mut compared = 0;
    let mut early_close_steps = 0;
    for (c, case) in cases().iter().enumerate() {
        let data = Arc::new(MarketData::from_bars(case.bars.clone(), &case.sim).unwrap());
        early_close_steps += data
            .sessions
            .iter()
            .filter(|s| s.last_decision == s.last_bar)
            .count();
        for phase in [1u8, 2] {
            let dir = tmp.path().join(format!("{c}-{phase}"));
            let ckpt = trained_checkpoint(&dir, &case.bars, &case.sim, phase);
            let bytes = std::fs::read(&ckpt).unwrap();
            let runs: &[(Actions, bool)] = match phase {
                1 => &[(Actions::Policy, false), (Actions::Random(3), false)],
                _ => &[(Actions::Random(5), true)],
            };
            for &(actions, forced) in runs {
                let name = format!(
                    "{}, drawdown {}, phase {phase}, {actions:?}, forced {forced}",
                    case.name, case.sim.max_drawdown
                );
                let game = trained(&data, &case.sim, phase, &bytes, actions, forced);
                let engine = evaluated(&case.bars, &case.sim, &ckpt, &game.actions);
                assert_same_game(&name, &game, &engine);
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 18);
    assert!(
        early_close_steps >= 4,
        "the early closes are among the sessions ({early_close_steps})"
    );
}

/// nq-train's held-out summary is nq-eval's replay of the same bars from a
/// Parquet file with `--from` the first held-out date: every figure equal.
#[test]
fn the_held_out_summary_is_nq_evals() {
    let tmp = tempfile::tempdir().unwrap();
    let bars = nq_test_support::nq_1min_bars();
    let sim = SimConfig::default();
    let data = MarketData::from_bars(bars.clone(), &sim).unwrap();
    let (_, held_out) = data.split_last(4).unwrap();
    let ckpt = trained_checkpoint(tmp.path(), &bars, &sim, 1);
    let trainer = nq_trainer::eval::evaluate(&ckpt, &held_out, sim).unwrap();

    let file = tmp.path().join("bars.parquet");
    let mut w = nq_tools::market_data::BarWriter::create(&file).unwrap();
    w.write(&bars).unwrap();
    w.finish().unwrap();
    let reader = nq_tools::market_data::MarketReader::open(&file).unwrap();
    let from = held_out.session_dates()[0].parse().unwrap();
    let range = nq_tools::eval::DateRange {
        from: Some(from),
        to: None,
    };
    let checkpoint = CheckpointFile::read(&ckpt).unwrap();
    let run =
        nq_tools::eval::replay("final", &checkpoint, None, &reader, range, &mut |_| {}).unwrap();
    let nq_eval = nq_tools::eval::Summary::of(&run);
    assert!(nq_eval.trades > 0, "{nq_eval:?}");
    assert_eq!(format!("{:?}", trainer.policy), format!("{nq_eval:?}"));
    assert_eq!(trainer.run.trades, run.trades);
}
