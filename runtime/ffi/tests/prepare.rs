//! `nq_engine_prepare`, the optional idle-time call: an engine that calls it
//! after every policy decision makes exactly the decisions of one that never
//! does (every field, floats compared by bits), on real bars replayed as
//! ticks with fills from the execution system in between; nearly all of its
//! decisions start from the prepared sums; over a checkpoint buffer that is
//! not 4-byte aligned it is a harmless no-op. Misuse is answered like every
//! other call.

mod common;

use std::ptr;

use nq_formats::SessionHours;
use nq_runtime_ffi::*;

fn read(
    e: *mut nq_engine,
    getter: unsafe extern "C" fn(*mut nq_engine, *mut u64) -> nq_status,
) -> u64 {
    let mut v = 0u64;
    // SAFETY: a live engine and a writable u64.
    assert_eq!(unsafe { getter(e, &mut v) }, nq_status::NQ_OK);
    v
}

/// What one engine did over the feed.
struct Run {
    decisions: Vec<Vec<u64>>,
    policy: u64,
    prepared: u64,
}

/// Replays `ticks`; every 40th decision that wants a position is reported
/// filled (the execution system overriding the position); with `prepare`,
/// `nq_engine_prepare` follows every policy decision once it is handled.
fn replay(ckpt: &[u8], ticks: &[nq_tick], prepare: bool) -> Run {
    let mut storage = common::engine_storage();
    let e = common::init_engine(&mut storage, ckpt);
    let mut d = nq_decision::default();
    let mut decisions = Vec::new();
    // Before any bar there is nothing to prepare: still fine.
    // SAFETY: a live engine.
    assert_eq!(unsafe { nq_engine_prepare(e) }, nq_status::NQ_OK);
    for tick in ticks {
        // SAFETY: a live engine, valid tick and output.
        let s = unsafe { nq_engine_on_tick(e, tick, &mut d) };
        assert!(
            s == nq_status::NQ_OK || s == nq_status::NQ_DECISION,
            "{s:?}"
        );
        if s != nq_status::NQ_DECISION {
            continue;
        }
        decisions.push(common::decision_bits(&d));
        if decisions.len() % 40 == 0 && d.target_position != 0 {
            let fill = nq_fill {
                ts_ns: tick.ts_ns,
                position: d.target_position,
                entry_price: tick.price,
                ..Default::default()
            };
            // SAFETY: a live engine and a valid fill.
            assert_eq!(unsafe { nq_engine_on_fill(e, &fill) }, nq_status::NQ_OK);
        }
        if prepare && d.kind == nq_decision_kind::NQ_KIND_POLICY as i32 {
            // SAFETY: a live engine.
            assert_eq!(unsafe { nq_engine_prepare(e) }, nq_status::NQ_OK);
        }
    }
    let run = Run {
        decisions,
        policy: read(e, nq_engine_decision_count),
        prepared: read(e, nq_engine_prepared_decisions),
    };
    // SAFETY: made by nq_engine_init.
    assert_eq!(unsafe { nq_engine_deinit(e) }, nq_status::NQ_OK);
    run
}

fn check_phase(phase: u8, hidden: &[u32]) {
    let spec = common::Spec {
        phase,
        hidden,
        session: SessionHours::GLOBEX,
        ..Default::default()
    };
    let bytes = common::checkpoint(&spec);
    let ckpt = common::Aligned::new(&bytes);
    let bars = common::real_bars();
    let ticks = common::ffi_ticks_of(&bars[..3_000]);

    let plain = replay(ckpt.bytes(), &ticks, false);
    let prepared = replay(ckpt.bytes(), &ticks, true);
    assert!(
        plain.policy > 2_000,
        "phase {phase}: {} policy decisions",
        plain.policy
    );
    assert_eq!(
        plain.prepared, 0,
        "phase {phase}: nothing prepared, nothing used"
    );
    assert_eq!(
        prepared.decisions.len(),
        plain.decisions.len(),
        "phase {phase}"
    );
    for (i, (a, b)) in prepared.decisions.iter().zip(&plain.decisions).enumerate() {
        assert_eq!(
            a, b,
            "phase {phase}: decision {i} differs with nq_engine_prepare"
        );
    }
    assert_eq!(prepared.policy, plain.policy);
    assert!(
        prepared.prepared * 10 > prepared.policy * 9,
        "phase {phase}: only {} of {} policy decisions used the prepared sums",
        prepared.prepared,
        prepared.policy
    );
    assert!(prepared.prepared <= prepared.policy);

    // Weights not read in place (buffer at an odd address): preparing does
    // nothing, and the decisions are still the same.
    let mut shifted = vec![0u8; bytes.len() + 1];
    let shifted = {
        let start = usize::from((shifted.as_ptr() as usize).is_multiple_of(4));
        shifted[start..start + bytes.len()].copy_from_slice(&bytes);
        &shifted[start..start + bytes.len()]
    };
    let unaligned = replay(shifted, &ticks, true);
    assert_eq!(unaligned.prepared, 0, "phase {phase}");
    assert_eq!(unaligned.decisions, plain.decisions, "phase {phase}");
}

#[test]
fn preparing_after_every_decision_changes_no_decision_phase_2() {
    check_phase(2, &[32, 32]);
}

#[test]
fn preparing_after_every_decision_changes_no_decision_phase_1() {
    check_phase(1, &[48, 16]);
}

#[test]
fn prepare_refuses_what_every_call_refuses() {
    let ckpt = common::Aligned::new(&common::checkpoint(&common::Spec::default()));
    let mut storage = common::engine_storage();
    let e = common::init_engine(&mut storage, ckpt.bytes());
    // SAFETY (this block): the storage outlives every call; the released
    // engine is only passed back while its storage is still allocated.
    unsafe {
        assert_eq!(
            nq_engine_prepared_decisions(e, ptr::null_mut()),
            nq_status::NQ_ERR_NULL_POINTER
        );
        let mut msg = nq_error::default();
        nq_engine_last_error(e, &mut msg);
        assert!(
            msg.message_str().contains("nq_engine_prepared_decisions"),
            "{}",
            msg.message_str()
        );
        assert_eq!(nq_engine_prepare(e), nq_status::NQ_OK);
        assert_eq!(nq_engine_deinit(e), nq_status::NQ_OK);
        assert_eq!(nq_engine_prepare(e), nq_status::NQ_ERR_NOT_AN_ENGINE);
        let mut n = 0u64;
        assert_eq!(
            nq_engine_prepared_decisions(e, &mut n),
            nq_status::NQ_ERR_NOT_AN_ENGINE
        );
        assert_eq!(
            nq_engine_prepare(ptr::null_mut()),
            nq_status::NQ_ERR_NULL_POINTER
        );
        assert_eq!(
            nq_engine_prepared_decisions(ptr::null_mut(), &mut n),
            nq_status::NQ_ERR_NULL_POINTER
        );
        let mut zeros = vec![0u64; nq_engine_size().div_ceil(8)];
        assert_eq!(
            nq_engine_prepare(zeros.as_mut_ptr().cast()),
            nq_status::NQ_ERR_NOT_AN_ENGINE
        );
    }
}
