//! The hot path allocates nothing: a counting global allocator watches one
//! million `Engine::on_tick` calls, with bar closes, policy decisions, fills
//! and trade records among them, and the idle-time preparation after each
//! decision, and must see zero allocations.
//!
//! The engine is loaded the way users load it, through the std wrapper
//! (`CheckpointFile`), from the Python-made fixture checkpoint.

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::allocations_during;
use nq_formats::{Side, Tick};
use nq_runtime::engine::{EngineConfig, Sampling};
use nq_tools::checkpoint_file::CheckpointFile;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

/// A seeded random walk on the 0.25 grid, one trade every 400 ms from a
/// Monday at midnight UTC: about 4.6 days, five RTH sessions.
fn ticks(n: usize) -> Vec<Tick> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut price = 17_000.0f64;
    let start = 1_704_672_000_000_000_000i64; // 2024-01-08 00:00 UTC, a Monday
    (0..n)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            price += [-0.25, 0.0, 0.0, 0.25][(state % 4) as usize];
            Tick {
                ts_ns: start + i as i64 * 400_000_000,
                price,
                size: 1.0 + (state >> 60) as f64,
                side: if state & 1 == 0 {
                    Side::Buy
                } else {
                    Side::Sell
                },
            }
        })
        .collect()
}

#[test]
fn one_million_ticks_allocate_nothing() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../runtime/fixtures/policy/policy_relu_p2.safetensors"
    );
    let file = CheckpointFile::read(path).expect("fixture checkpoint");
    let policy = file.policy().expect("valid policy");
    let mut config = EngineConfig::from_policy(&policy);
    config.sim.max_drawdown = 0.0;
    config.sampling = Sampling::Sample { seed: 3 };
    let mut engine = file.engine(Some(config)).expect("engine");
    let ticks = ticks(1_000_000);

    // The counter must see an allocation when there is one, or a zero proves nothing.
    let ((), seen) = allocations_during(|| drop(std::hint::black_box(vec![0u8; 64])));
    assert_eq!(seen, 1);

    let (mut decisions, mut trades, mut moves) = (0u64, 0u64, 0u64);
    let ((), allocations) = allocations_during(|| {
        for tick in &ticks {
            let step = engine.on_tick(tick).expect("valid tick");
            if let Some(d) = step.decision {
                decisions += 1;
                moves += d.action.is_position_management() as u64;
                engine.prepare_next_decision();
            }
            trades += step.exits().count() as u64;
        }
    });

    assert_eq!(allocations, 0, "allocations in the hot path");
    assert!(decisions > 1_500, "{decisions} decisions");
    assert!(trades > 50, "{trades} trades");
    assert!(moves > 0, "no position-management action was exercised");
    assert!(
        engine.prepared_decisions() > decisions / 2,
        "prepared sums used in {} of {decisions} decisions",
        engine.prepared_decisions()
    );
}
