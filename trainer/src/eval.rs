//! A short out-of-sample check for the end of a run and the learning test:
//! each held-out session is one episode of the training environment (the
//! runtime's features and simulator, breach reset per session), replayed with
//! the runtime's own policy forward (`nq_runtime::policy::Policy`, greedy),
//! beside a random valid policy. The full backtest, tick by tick through the
//! runtime `Engine`, is `nq-eval`.

use std::sync::Arc;

use nq_formats::SimConfig;
use nq_runtime::policy::{Checkpoint as RtCheckpoint, Policy, PolicyScratch};
use serde::Serialize;

use crate::env::{EnvSchedule, EnvStats, MarketData, MarketEnv};
use crate::error::UserError;
use crate::rng::Rng;

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct EvalSummary {
    pub sessions: u64,
    pub decisions: u64,
    pub trades: u64,
    pub win_rate: f64,
    /// Net P&L (commissions included), dollars.
    pub net_pnl: f64,
    pub worst_session_drawdown: f64,
    pub breaches: u64,
    pub actions: [u64; 6],
}

impl EvalSummary {
    fn from_stats(s: &EnvStats) -> EvalSummary {
        EvalSummary {
            sessions: s.episodes,
            decisions: s.steps,
            trades: s.trades,
            win_rate: s.wins as f64 / s.trades.max(1) as f64,
            net_pnl: s.episode_pnl,
            worst_session_drawdown: s.max_drawdown,
            breaches: s.breaches,
            actions: s.actions,
        }
    }
}

/// Replays every session of `data` once, choosing actions with `choose(obs, mask)`.
pub fn replay(
    data: Arc<MarketData>,
    sim: SimConfig,
    phase: u8,
    mut choose: impl FnMut(&[f32], u8) -> Result<u8, UserError>,
) -> Result<EvalSummary, UserError> {
    let dim = nq_runtime::features::observation_len(phase);
    let mut env = MarketEnv::new(data.clone(), sim, phase, false, 0, Rng::new(0, 0))?;
    env.set_schedule(EnvSchedule {
        commission: sim.commission_per_side,
        ..EnvSchedule::default()
    });
    let mut obs = vec![0.0f32; dim];
    let mut scratch = vec![0.0f32; dim];
    let mut total = EnvStats::default();
    for session in 0..data.sessions.len() {
        let mut mask = env.start_session(session, &mut obs);
        loop {
            let action = choose(&obs, mask)?;
            let (_, terminated, truncated, m) = env.step(action, &mut obs, &mut scratch);
            mask = m;
            if terminated || truncated {
                break;
            }
        }
        total.merge(&env.take_stats());
    }
    Ok(EvalSummary::from_stats(&total))
}

/// The checkpoint, through the runtime's policy (greedy).
pub fn evaluate_checkpoint(
    bytes: &[u8],
    data: Arc<MarketData>,
    sim: SimConfig,
    phase: u8,
) -> Result<EvalSummary, UserError> {
    let ck = RtCheckpoint::parse(bytes)
        .map_err(|e| UserError::new(format!("runtime checkpoint parse: {e}")))?;
    let policy =
        Policy::from_checkpoint(&ck).map_err(|e| UserError::new(format!("runtime policy: {e}")))?;
    let mut scratch = PolicyScratch::new();
    replay(data, sim, phase, |obs, mask| {
        let out = policy
            .forward(obs, nq_runtime::ActionMask::from_bits(mask), &mut scratch)
            .map_err(|e| UserError::new(format!("runtime forward: {e}")))?;
        Ok(out.argmax() as u8)
    })
}

/// Uniformly random valid actions: the baseline a policy must beat.
pub fn evaluate_random(
    data: Arc<MarketData>,
    sim: SimConfig,
    phase: u8,
    seed: u64,
) -> Result<EvalSummary, UserError> {
    let mut rng = Rng::new(seed, 77);
    replay(data, sim, phase, |_, mask| {
        let valid: Vec<u8> = (0..6u8).filter(|a| mask & (1 << a) != 0).collect();
        Ok(valid[rng.below(valid.len())])
    })
}
