//! Nothing in the C ABI allocates except `nq_engine_new`: a counting global
//! allocator watches `nq_engine_options_default` and `nq_engine_init_with`
//! (options parsed: session, costs, sampling) in caller storage and then
//! every feeding call over real bars turned into ticks (bar closes, policy
//! decisions, fills, clock flushes, refused ticks with their messages),
//! `nq_engine_last_events` after each, the idle-time `nq_engine_prepare`
//! after every policy decision and `nq_engine_end_of_data`, and must see
//! zero allocations.

mod common;
#[path = "../../../tools/tests/support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::allocations_during;
use nq_formats::SessionHours;
use nq_runtime_ffi::*;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

#[test]
fn creation_in_storage_and_feeding_never_allocate() {
    let spec = common::Spec {
        session: SessionHours::GLOBEX,
        ..Default::default()
    };
    let ckpt = common::Aligned::new(&common::checkpoint(&spec));
    let bars = common::real_bars();
    let bars = &bars[..2_000];
    let ticks = common::ffi_ticks_of(bars);
    let mut storage = vec![0u64; nq_engine_size().div_ceil(8)];
    let mut d = nq_decision::default();
    let mut err = nq_error::default();
    let (mut decisions, mut fills, mut refused) = (0, 0, 0);
    let (mut policy_decisions, mut prepared) = (0u64, 0u64);
    let (mut entries, mut trades) = (0, 0);
    let mut events = nq_events::default();
    let mut options = std::mem::MaybeUninit::<nq_engine_options>::uninit();

    // SAFETY: storage, checkpoint and outputs outlive the engine.
    let ((), allocations) = allocations_during(|| unsafe {
        assert_eq!(
            nq_engine_options_default(options.as_mut_ptr()),
            nq_status::NQ_OK
        );
        let options = options.assume_init_mut();
        options.sampling = nq_sampling::NQ_SAMPLING_SAMPLE as i32;
        options.seed = 5;
        options.commission_per_side = 1.5;
        options.drawdown_limit_usd = 0.0;
        for (dst, &b) in options.session.iter_mut().zip(b"18:00-17:00") {
            *dst = b as std::ffi::c_char;
        }
        let e = nq_engine_init_with(
            storage.as_mut_ptr().cast(),
            storage.len() * 8,
            ckpt.bytes().as_ptr(),
            ckpt.bytes().len(),
            options,
            &mut err,
        );
        assert!(!e.is_null());
        for (i, tick) in ticks.iter().enumerate() {
            let status = nq_engine_on_tick(e, tick, &mut d);
            assert_eq!(nq_engine_last_events(e, &mut events), nq_status::NQ_OK);
            entries += events.has_entry as u32;
            trades += events.has_trade as u32;
            if status == nq_status::NQ_DECISION {
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
                // Idle time after the decision, as a live system spends it.
                if d.kind == nq_decision_kind::NQ_KIND_POLICY as i32 {
                    assert_eq!(nq_engine_prepare(e), nq_status::NQ_OK);
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
        let mut trade = nq_trade::default();
        let closed = nq_engine_end_of_data(e, end, &mut trade);
        assert!(closed == nq_status::NQ_OK || closed == nq_status::NQ_TRADE_CLOSED);
        assert_eq!(nq_engine_last_events(e, &mut events), nq_status::NQ_OK);
        let (mut obs, mut len) = (std::ptr::null(), 0usize);
        assert_eq!(
            nq_engine_observation(e, &mut obs, &mut len),
            nq_status::NQ_OK
        );
        nq_engine_decision_count(e, &mut policy_decisions);
        nq_engine_prepared_decisions(e, &mut prepared);
        assert_eq!(nq_engine_deinit(e), nq_status::NQ_OK);
    });

    assert!(
        decisions > 1_000 && fills > 10 && refused > 10,
        "{decisions} {fills} {refused}"
    );
    assert!(
        entries > 10 && trades > 10,
        "{entries} entries, {trades} trades"
    );
    // The prepared path really ran inside the counted region.
    assert!(
        prepared * 10 > policy_decisions * 9,
        "{prepared} of {policy_decisions} policy decisions used prepared sums"
    );
    assert_eq!(allocations, 0);
}

/// The counter itself works: the boxed constructor is seen allocating.
#[test]
fn the_counter_sees_nq_engine_new() {
    let ckpt = common::Aligned::new(&common::checkpoint(&common::Spec::default()));
    // SAFETY: the checkpoint outlives the engine.
    let (e, allocations) = allocations_during(|| unsafe {
        nq_engine_new(
            ckpt.bytes().as_ptr(),
            ckpt.bytes().len(),
            std::ptr::null_mut(),
        )
    });
    assert!(!e.is_null());
    assert!(allocations > 0);
    // SAFETY: made by nq_engine_new.
    assert_eq!(unsafe { nq_engine_free(e) }, nq_status::NQ_OK);
}
