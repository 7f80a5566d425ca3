//! The guarantee the whole design exists for: the observation the engine
//! builds live, tick by tick, is bit for bit the one the trainer's
//! environments fed the policy for the same bar. Both sides read the same
//! Parquet ticks (the committed sample), the trainer through its batch path
//! (bars built once, `compute_series`), the engine through `on_tick`.

use std::path::PathBuf;

use nq_formats::SimConfig;
use nq_runtime::engine::{DecisionKind, EngineConfig};
use nq_runtime::step::{BarStepper, DrawdownScope};
use nq_tools::checkpoint_file::CheckpointFile;
use nq_tools::market_data::MarketReader;
use nq_trainer::data::load_bars;
use nq_trainer::env::MarketData;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(path)
}

#[test]
fn engine_observations_equal_the_trainers() {
    let data = repo("data/nq_synth_ticks.parquet");
    let sim = SimConfig {
        max_drawdown: 0.0,
        ..SimConfig::default()
    };

    let trained = MarketData::from_bars(
        load_bars(std::slice::from_ref(&data), &sim).unwrap().bars,
        &sim,
    )
    .expect("trainer's market data");

    let file = CheckpointFile::read(repo("runtime/fixtures/policy/policy_tanh_p1.safetensors"))
        .expect("fixture checkpoint");
    let policy = file.policy().unwrap();
    let config = EngineConfig {
        sim,
        ..EngineConfig::from_policy(&policy)
    };
    let mut engine = file.engine(Some(config)).unwrap();
    let ticks = MarketReader::open(&data).unwrap().read_all_ticks().unwrap();

    // A flat account: the context the trainer's episodes start from.
    let flat = BarStepper::new(sim, DrawdownScope::Session, 3).unwrap();
    let mut trainer_obs = vec![0.0f32; 225];
    let (mut compared, mut compared_flat) = (0, 0);
    for tick in &ticks {
        let Some(d) = engine
            .on_tick(tick)
            .expect("sample ticks are valid")
            .decision
        else {
            continue;
        };
        if d.kind != DecisionKind::Policy {
            continue;
        }
        let i = trained
            .bars
            .binary_search_by_key(&d.bar_ts_ns, |b| b.ts_ns)
            .expect("the trainer has the engine's bar");
        // The flat account's mask, from the simulator's one mask rule.
        let info = &trained.info[i];
        let mask = flat.simulator().mask(info.close, info.atr, 3);
        trained.observation(i, &flat, mask, 1, &mut trainer_obs);
        let live = engine.observation();
        assert_eq!(
            live[..220],
            trainer_obs[..220],
            "market features at bar {i}"
        );
        compared += 1;
        if d.position == 0 {
            // Flat on both sides: the context features and the mask agree too.
            assert_eq!(live, &trainer_obs[..], "observation at bar {i}");
            assert_eq!(d.mask, mask, "mask at bar {i}");
            compared_flat += 1;
        }
    }
    assert!(compared > 3_000, "{compared} decisions compared");
    assert!(
        compared_flat > 500,
        "{compared_flat} flat decisions compared"
    );
}
