//! Nothing in the C ABI allocates except `nq_engine_new`: a counting global
//! allocator watches `nq_engine_init` in caller storage and then every
//! feeding call over real bars turned into ticks (bar closes, policy
//! decisions, fills, clock flushes, refused ticks with their messages), and
//! must see zero allocations.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use nq_formats::SessionHours;
use nq_runtime_ffi::*;

struct Counting;

thread_local! {
    // Per thread: the harness runs the tests, and allocates, on other threads.
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    if WATCHING.with(Cell::get) {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
    }
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
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

#[test]
fn creation_in_storage_and_feeding_never_allocate() {
    let spec = common::Spec {
        session: SessionHours::GLOBEX,
        ..Default::default()
    };
    let ckpt = common::Aligned::new(&common::checkpoint(&spec));
    let bars = common::real_bars();
    let bars = &bars[..2_000];
    let ticks: Vec<nq_tick> = common::ticks_csv_of(bars)
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            nq_tick {
                ts_ns: f[0].parse().unwrap(),
                price: f[1].parse().unwrap(),
                size: f[2].parse().unwrap(),
                side: nq_side::NQ_SIDE_NONE as i32,
            }
        })
        .collect();
    let mut storage = vec![0u64; nq_engine_size().div_ceil(8)];
    let mut d = nq_decision::default();
    let mut err = nq_error::default();
    let (mut decisions, mut fills, mut refused) = (0, 0, 0);

    WATCHING.with(|w| w.set(true));
    // SAFETY: storage, checkpoint and outputs outlive the engine.
    unsafe {
        let e = nq_engine_init(
            storage.as_mut_ptr().cast(),
            storage.len() * 8,
            ckpt.bytes().as_ptr(),
            ckpt.bytes().len(),
            &mut err,
        );
        assert!(!e.is_null());
        for (i, tick) in ticks.iter().enumerate() {
            if nq_engine_on_tick(e, tick, &mut d) == nq_status::NQ_DECISION {
                decisions += 1;
                if decisions % 40 == 0 && d.target_position != 0 {
                    let fill = nq_fill {
                        ts_ns: tick.ts_ns,
                        position: d.target_position,
                        entry_price: tick.price,
                        ..Default::default()
                    };
                    assert_eq!(nq_engine_on_fill(e, &fill), nq_status::NQ_OK);
                    fills += 1;
                }
            }
            if i % 500 == 0 {
                let bad = nq_tick {
                    price: -1.0,
                    ..*tick
                };
                assert_eq!(
                    nq_engine_on_tick(e, &bad, &mut d),
                    nq_status::NQ_ERR_TICK_REJECTED
                );
                let mut last = nq_error::default();
                nq_engine_last_error(e, &mut last);
                refused += 1;
            }
        }
        let end = ticks.last().unwrap().ts_ns + 60_000_000_000;
        assert_eq!(nq_engine_flush(e, end, &mut d), nq_status::NQ_DECISION);
        let (mut obs, mut len) = (std::ptr::null(), 0usize);
        assert_eq!(
            nq_engine_observation(e, &mut obs, &mut len),
            nq_status::NQ_OK
        );
        assert_eq!(nq_engine_deinit(e), nq_status::NQ_OK);
    }
    WATCHING.with(|w| w.set(false));

    assert!(
        decisions > 1_000 && fills > 10 && refused > 10,
        "{decisions} {fills} {refused}"
    );
    assert_eq!(allocations(), 0);
}

/// The counter itself works: the boxed constructor is seen allocating.
#[test]
fn the_counter_sees_nq_engine_new() {
    let ckpt = common::Aligned::new(&common::checkpoint(&common::Spec::default()));
    WATCHING.with(|w| w.set(true));
    let before = allocations();
    // SAFETY: the checkpoint outlives the engine.
    let e = unsafe {
        nq_engine_new(
            ckpt.bytes().as_ptr(),
            ckpt.bytes().len(),
            std::ptr::null_mut(),
        )
    };
    let after = allocations();
    WATCHING.with(|w| w.set(false));
    assert!(!e.is_null());
    assert!(after > before);
    // SAFETY: made by nq_engine_new.
    assert_eq!(unsafe { nq_engine_free(e) }, nq_status::NQ_OK);
}
