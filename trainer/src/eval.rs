//! Replays of a checkpoint over sessions the run did not train on: nq-eval's
//! own backtest ([`nq_tools::eval::replay`]) over the run's bars in memory,
//! through the runtime's `Engine` (its bar step, features and policy
//! forward), greedy, beside a random valid policy. So the held-out summary
//! nq-train prints is, to the cent, what `nq-eval CHECKPOINT DATA --from
//! DATE` reports on the same bar data: the same code, not a second one.
//! (Tick data is built into bars for training; nq-eval replays ticks tick
//! by tick, so there the two differ by what a tick fill adds.)

use std::path::Path;

use nq_formats::SimConfig;
use nq_runtime::engine::EngineConfig;
use nq_tools::checkpoint_file::CheckpointFile;
use nq_tools::eval::{replay, replay_baseline, Baseline, DateRange, Run, Summary};

use crate::env::MarketData;
use crate::error::UserError;

/// A checkpoint replayed over some sessions, beside random valid actions.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub policy: Summary,
    pub random: Summary,
    /// The policy's replay (trades, equity rows).
    pub run: Run,
}

/// Replays the checkpoint at `path` over `data`'s sessions on (every bar of
/// the data is fed, those before the first of its sessions as warm-up, as
/// `nq-eval --from` does), with the simulator settings `sim`, greedy; and
/// nq-eval's random baseline over the same sessions.
pub fn evaluate(path: &Path, data: &MarketData, sim: SimConfig) -> Result<Evaluation, UserError> {
    let checkpoint = CheckpointFile::read(path).map_err(|e| UserError::new(e.to_string()))?;
    let config = {
        let policy = checkpoint
            .policy()
            .map_err(|e| UserError::new(e.to_string()))?;
        EngineConfig {
            sim,
            ..EngineConfig::from_policy(&policy)
        }
    };
    let range = DateRange {
        from: data.session_dates().first().and_then(|d| d.parse().ok()),
        to: None,
    };
    let name = path
        .file_stem()
        .map_or("policy".into(), |s| s.to_string_lossy().into_owned());
    let err = |e: nq_tools::Error| UserError::new(e.to_string());
    let run = replay(
        &name,
        &checkpoint,
        Some(config),
        data.bars.as_slice(),
        range,
        &mut |_| {},
    )
    .map_err(err)?;
    let random_baseline = Baseline::ALL
        .into_iter()
        .find(|b| matches!(b, Baseline::Random { .. }))
        .unwrap_or(Baseline::Random { seed: 1 });
    let random = replay_baseline(
        random_baseline,
        &checkpoint,
        Some(config),
        data.bars.as_slice(),
        range,
        &mut |_| {},
    )
    .map_err(err)?;
    Ok(Evaluation {
        policy: Summary::of(&run),
        random: Summary::of(&random),
        run,
    })
}
