//! The hot path allocates nothing: a counting global allocator watches one
//! million `Engine::on_tick` calls, with bar closes, policy decisions, fills
//! and trade records among them, and must see zero allocations.
//!
//! The engine is loaded the way users load it, through the std wrapper
//! (`CheckpointFile`), from the Python-made fixture checkpoint.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use nq_formats::{Side, Tick};
use nq_runtime::engine::{EngineConfig, Sampling};
use nq_tools::checkpoint_file::CheckpointFile;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // Only the measuring thread counts: the test harness allocates on its own threads.
    static WATCHING: Cell<bool> = const { Cell::new(false) };
}

fn note_allocation() {
    if WATCHING.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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
    WATCHING.with(|w| w.set(true));
    drop(std::hint::black_box(vec![0u8; 64]));
    WATCHING.with(|w| w.set(false));
    assert_eq!(ALLOCATIONS.swap(0, Ordering::Relaxed), 1);

    let (mut decisions, mut trades, mut moves) = (0u64, 0u64, 0u64);
    WATCHING.with(|w| w.set(true));
    for tick in &ticks {
        if let Some(d) = engine.on_tick(tick).expect("valid tick") {
            decisions += 1;
            moves += d.action.is_position_management() as u64;
        }
        trades += engine.events().exit.is_some() as u64;
    }
    WATCHING.with(|w| w.set(false));

    assert_eq!(
        ALLOCATIONS.load(Ordering::Relaxed),
        0,
        "allocations in the hot path"
    );
    assert!(decisions > 1_500, "{decisions} decisions");
    assert!(trades > 50, "{trades} trades");
    assert!(moves > 0, "no position-management action was exercised");
}
