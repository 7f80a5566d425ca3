//! The C ABI called from Rust the way C calls it: creation in caller storage
//! and in a box, decisions equal to the engine's, fills steering the
//! position, and every checkable misuse (NULL, short or misaligned storage,
//! bad checkpoints, released engines, bad ticks, bars and fills) answered
//! with its error code and a message, the engine left usable.

mod common;

use std::ffi::CStr;
use std::ptr;

use nq_formats::{Bar, SessionHours};
use nq_runtime::engine::Engine;
use nq_runtime_ffi::*;

fn cstr(p: *const std::ffi::c_char) -> &'static str {
    assert!(!p.is_null());
    // SAFETY: the library returns static NUL-terminated strings.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap()
}

/// Engine storage as a C caller would allocate it: `nq_engine_size()` bytes
/// at `nq_engine_align()` (u64 words give 8).
struct Storage(Vec<u64>);

impl Storage {
    fn new() -> Storage {
        assert!(nq_engine_align() <= 8);
        Storage(vec![0; nq_engine_size().div_ceil(8) + 1])
    }
    fn ptr(&mut self) -> *mut std::ffi::c_void {
        self.0.as_mut_ptr().cast()
    }
    fn len(&self) -> usize {
        self.0.len() * 8
    }
}

fn init(storage: &mut Storage, ckpt: &[u8]) -> Result<*mut nq_engine, Box<nq_error>> {
    let mut err = nq_error::default();
    // SAFETY: storage and checkpoint outlive the engine in every test.
    let e = unsafe {
        nq_engine_init(
            storage.ptr(),
            storage.len(),
            ckpt.as_ptr(),
            ckpt.len(),
            &mut err,
        )
    };
    if e.is_null() {
        Err(Box::new(err))
    } else {
        assert_eq!(err.code, nq_status::NQ_OK as i32);
        Ok(e)
    }
}

fn last_error(e: *mut nq_engine) -> nq_error {
    let mut err = nq_error::default();
    // SAFETY: `e` is an engine from `init`.
    assert_eq!(
        unsafe { nq_engine_last_error(e, &mut err) },
        nq_status::NQ_OK
    );
    err
}

fn bar_decision(e: *mut nq_engine, bar: &Bar) -> (nq_status, nq_decision) {
    let b = nq_bar {
        ts_ns: bar.ts_ns,
        open: bar.open,
        high: bar.high,
        low: bar.low,
        close: bar.close,
        volume: bar.volume,
    };
    let mut d = nq_decision::default();
    // SAFETY: valid engine and pointers.
    let s = unsafe { nq_engine_on_bar(e, &b, &mut d) };
    (s, d)
}

fn warm_engine(storage: &mut Storage, ckpt: &[u8], bars: &[Bar]) -> *mut nq_engine {
    let e = init(storage, ckpt).unwrap();
    for bar in bars {
        let (s, _) = bar_decision(e, bar);
        assert!(s == nq_status::NQ_OK || s == nq_status::NQ_DECISION);
    }
    e
}

#[test]
fn decisions_through_the_abi_equal_the_engine_and_fills_steer_the_position() {
    let ckpt = common::Aligned::new(&common::checkpoint(&common::Spec::default()));
    let bars = common::real_bars();
    let bars = &bars[..3_000];
    let mut storage = Storage::new();
    let e = init(&mut storage, ckpt.bytes()).unwrap();
    let mut engine = Engine::from_checkpoint_bytes(ckpt.bytes()).unwrap();
    let mut compared = 0;
    let mut fills = 0;
    for (i, bar) in bars.iter().enumerate() {
        let (s, d) = bar_decision(e, bar);
        let want = engine.on_bar(bar).unwrap().decision;
        assert_eq!(s == nq_status::NQ_DECISION, want.is_some(), "bar {i}");
        let Some(want) = want else { continue };
        compared += 1;
        assert_eq!(d.ts_ns, want.ts_ns);
        assert_eq!(d.bar_ts_ns, want.bar_ts_ns);
        assert_eq!(d.kind, want.kind as i32);
        assert_eq!(d.action, want.action.code() as i32);
        assert_eq!(cstr(nq_action_name(d.action)), want.action.name());
        assert_eq!(cstr(nq_decision_kind_name(d.kind)), want.kind.name());
        assert_eq!(d.position, want.position as i32);
        assert_eq!(d.target_position, want.target_position as i32);
        assert_eq!(d.has_stop != 0, want.stop_price.is_some());
        assert_eq!(d.stop_price, want.stop_price.unwrap_or(0.0));
        assert_eq!(d.has_target != 0, want.target_price.is_some());
        assert_eq!(d.target_price, want.target_price.unwrap_or(0.0));
        assert_eq!(d.probs, want.probs);
        assert_eq!(d.n_actions, 6);
        assert_eq!(d.mask, want.mask.bits() as u32);
        assert_eq!(
            (d.close, d.atr, d.equity),
            (want.close, want.atr, want.equity)
        );

        let mut obs: *const f32 = ptr::null();
        let mut len = 0usize;
        // SAFETY: valid engine and out pointers.
        assert_eq!(
            unsafe { nq_engine_observation(e, &mut obs, &mut len) },
            nq_status::NQ_OK
        );
        // SAFETY: the library returned `len` floats inside the engine.
        let obs = unsafe { std::slice::from_raw_parts(obs, len) };
        assert_eq!(obs, engine.observation());

        // Every 50th decision the execution system reports a long fill:
        // the next decision starts from that position on both sides.
        if compared % 50 == 0 && d.kind == nq_decision_kind::NQ_KIND_POLICY as i32 {
            let fill = nq_fill {
                ts_ns: d.ts_ns + 1,
                position: 1,
                entry_price: d.close,
                has_stop: 1,
                stop_price: d.close - 20.0,
                has_target: 0,
                target_price: 0.0,
            };
            // SAFETY: valid engine and fill.
            assert_eq!(unsafe { nq_engine_on_fill(e, &fill) }, nq_status::NQ_OK);
            engine
                .on_fill(&nq_runtime::engine::FillReport {
                    ts_ns: fill.ts_ns,
                    position: 1,
                    entry_price: d.close,
                    stop_price: Some(d.close - 20.0),
                    target_price: None,
                })
                .unwrap();
            fills += 1;
        }
    }
    assert!(
        compared > 500 && fills > 5,
        "{compared} decisions, {fills} fills"
    );
    let mut count = 0u64;
    // SAFETY: valid engine and out pointer.
    assert_eq!(
        unsafe { nq_engine_decision_count(e, &mut count) },
        nq_status::NQ_OK
    );
    assert_eq!(count, engine.decision_count());
    let mut hash = 0u64;
    // SAFETY: as above.
    assert_eq!(
        unsafe { nq_engine_layout_hash(e, &mut hash) },
        nq_status::NQ_OK
    );
    assert_eq!(hash, nq_layout_hash(60));
    assert_eq!(hash, nq_formats::OBS_LAYOUT_V1.hash());
    // SAFETY: made by nq_engine_init.
    assert_eq!(unsafe { nq_engine_deinit(e) }, nq_status::NQ_OK);
}

#[test]
fn creation_refuses_null_short_misaligned_and_bad_checkpoints() {
    let good = common::Aligned::new(&common::checkpoint(&common::Spec::default()));
    let mut storage = Storage::new();
    let mut err = nq_error::default();

    // SAFETY (this block): every pointer is NULL or valid for its length.
    unsafe {
        let e = nq_engine_init(
            ptr::null_mut(),
            1 << 20,
            good.bytes().as_ptr(),
            good.bytes().len(),
            &mut err,
        );
        assert!(e.is_null());
        assert_eq!(err.code, nq_status::NQ_ERR_NULL_POINTER as i32);
        assert!(
            err.message_str().contains("storage"),
            "{}",
            err.message_str()
        );

        let short = nq_engine_size() - 1;
        let e = nq_engine_init(
            storage.ptr(),
            short,
            good.bytes().as_ptr(),
            good.bytes().len(),
            &mut err,
        );
        assert!(e.is_null());
        assert_eq!(err.code, nq_status::NQ_ERR_STORAGE_TOO_SMALL as i32);
        let msg = err.message_str();
        assert!(
            msg.contains(&short.to_string()) && msg.contains(&nq_engine_size().to_string()),
            "{msg}"
        );

        let misaligned = storage.ptr().cast::<u8>().add(1).cast();
        let e = nq_engine_init(
            misaligned,
            storage.len() - 8,
            good.bytes().as_ptr(),
            good.bytes().len(),
            &mut err,
        );
        assert!(e.is_null());
        assert_eq!(err.code, nq_status::NQ_ERR_STORAGE_MISALIGNED as i32);
        assert!(
            err.message_str().contains("aligned"),
            "{}",
            err.message_str()
        );

        let e = nq_engine_init(storage.ptr(), storage.len(), ptr::null(), 10, &mut err);
        assert!(e.is_null());
        assert_eq!(err.code, nq_status::NQ_ERR_NULL_POINTER as i32);
        assert!(err.message_str().contains("checkpoint"));

        // NULL `err` is allowed: the result alone says it failed.
        let e = nq_engine_init(
            storage.ptr(),
            short,
            good.bytes().as_ptr(),
            good.bytes().len(),
            ptr::null_mut(),
        );
        assert!(e.is_null());
        let e = nq_engine_new(ptr::null(), 0, ptr::null_mut());
        assert!(e.is_null());
    }

    // Truncated: the header length points past the end.
    let truncated = &good.bytes()[..good.bytes().len() / 2];
    let err = init(&mut storage, truncated).unwrap_err();
    assert_eq!(
        err.code,
        nq_status::NQ_ERR_CHECKPOINT_INVALID as i32,
        "{}",
        err.message_str()
    );
    assert!(
        err.message_str().starts_with("checkpoint:"),
        "{}",
        err.message_str()
    );
    let err = init(&mut storage, &good.bytes()[..4]).unwrap_err();
    assert_eq!(err.code, nq_status::NQ_ERR_CHECKPOINT_INVALID as i32);
    let err = init(&mut storage, &[]).unwrap_err();
    assert_eq!(err.code, nq_status::NQ_ERR_CHECKPOINT_INVALID as i32);

    // Mismatched: a checkpoint for another observation layout.
    let mut meta = common::metadata(&common::Spec::default());
    meta.obs_layout_hash ^= 1;
    let other_layout = common::checkpoint_with(&meta, 3);
    let err = init(&mut storage, &other_layout).unwrap_err();
    assert_eq!(
        err.code,
        nq_status::NQ_ERR_CHECKPOINT_MISMATCH as i32,
        "{}",
        err.message_str()
    );
    assert!(
        err.message_str().contains("obs_layout_hash"),
        "{}",
        err.message_str()
    );

    // The same file at an odd address still works (the decoding path).
    let mut shifted = vec![0u8; good.bytes().len() + 1];
    shifted[1..].copy_from_slice(good.bytes());
    let e = init(&mut storage, &shifted[1..]).expect("unaligned checkpoints are accepted");
    // SAFETY: made by nq_engine_init.
    assert_eq!(unsafe { nq_engine_deinit(e) }, nq_status::NQ_OK);
}

#[test]
fn boxed_engines_and_released_engines() {
    let ckpt = common::Aligned::new(&common::checkpoint(&common::Spec::default()));
    let mut err = nq_error::default();
    // SAFETY (this block): the checkpoint outlives every engine; released
    // engines are only passed back while their storage is still allocated.
    unsafe {
        let boxed = nq_engine_new(ckpt.bytes().as_ptr(), ckpt.bytes().len(), &mut err);
        assert!(!boxed.is_null(), "{}", err.message_str());
        assert_eq!(nq_engine_deinit(boxed), nq_status::NQ_ERR_INVALID_ARGUMENT);
        assert!(last_error(boxed).message_str().contains("nq_engine_free"));
        assert_eq!(nq_engine_free(boxed), nq_status::NQ_OK);
        assert_eq!(nq_engine_free(ptr::null_mut()), nq_status::NQ_OK);

        let bad = nq_engine_new(ckpt.bytes().as_ptr(), 16, &mut err);
        assert!(bad.is_null());
        assert_eq!(err.code, nq_status::NQ_ERR_CHECKPOINT_INVALID as i32);

        let mut storage = Storage::new();
        let e = init(&mut storage, ckpt.bytes()).unwrap();
        assert_eq!(nq_engine_free(e), nq_status::NQ_ERR_INVALID_ARGUMENT);
        assert!(last_error(e).message_str().contains("nq_engine_deinit"));
        assert_eq!(nq_engine_deinit(e), nq_status::NQ_OK);
        // Released: every call refuses it.
        let mut d = nq_decision::default();
        let tick = nq_tick {
            ts_ns: 1,
            price: 1.0,
            size: 1.0,
            side: 0,
        };
        assert_eq!(
            nq_engine_on_tick(e, &tick, &mut d),
            nq_status::NQ_ERR_NOT_AN_ENGINE
        );
        assert_eq!(nq_engine_deinit(e), nq_status::NQ_ERR_NOT_AN_ENGINE);
        let mut out = nq_error::default();
        assert_eq!(
            nq_engine_last_error(e, &mut out),
            nq_status::NQ_ERR_NOT_AN_ENGINE
        );

        // Storage that never held an engine (zeros) is refused too.
        let mut zeros = Storage::new();
        let never = zeros.ptr().cast::<nq_engine>();
        assert_eq!(
            nq_engine_flush(never, 0, &mut d),
            nq_status::NQ_ERR_NOT_AN_ENGINE
        );
        assert_eq!(
            nq_engine_flush(ptr::null_mut(), 0, &mut d),
            nq_status::NQ_ERR_NULL_POINTER
        );
    }
}

#[test]
fn bad_input_is_an_error_code_with_a_message_and_changes_nothing() {
    let spec = common::Spec {
        session: SessionHours::GLOBEX,
        ..Default::default()
    };
    let ckpt = common::Aligned::new(&common::checkpoint(&spec));
    let bars = common::real_bars();
    let mut storage = Storage::new();
    let e = warm_engine(&mut storage, ckpt.bytes(), &bars[..200]);
    // The same valid inputs, without the bad ones, into the engine itself.
    let mut reference = Engine::from_checkpoint_bytes(ckpt.bytes()).unwrap();
    for bar in &bars[..200] {
        reference.on_bar(bar).unwrap();
    }
    let last = bars[199];
    let mut d = nq_decision::default();
    let mut count_before = 0u64;
    // SAFETY (this block): `e` is live; every other pointer is NULL or valid.
    unsafe {
        nq_engine_decision_count(e, &mut count_before);

        let tick = nq_tick {
            ts_ns: last.ts_ns + 60_000_000_000,
            price: last.close,
            size: 1.0,
            side: 1,
        };
        assert_eq!(
            nq_engine_on_tick(e, ptr::null(), &mut d),
            nq_status::NQ_ERR_NULL_POINTER
        );
        assert!(last_error(e).message_str().contains("NULL"));
        assert_eq!(
            nq_engine_on_tick(e, &tick, ptr::null_mut()),
            nq_status::NQ_ERR_NULL_POINTER
        );

        let nan = nq_tick {
            price: f64::NAN,
            ..tick
        };
        assert_eq!(
            nq_engine_on_tick(e, &nan, &mut d),
            nq_status::NQ_ERR_TICK_REJECTED
        );
        let err = last_error(e);
        assert_eq!(err.code, nq_status::NQ_ERR_TICK_REJECTED as i32);
        assert!(
            err.message_str().contains("price is NaN or infinite"),
            "{}",
            err.message_str()
        );
        assert!(err.message_str().contains(&tick.ts_ns.to_string()));

        let odd_side = nq_tick { side: 7, ..tick };
        assert_eq!(
            nq_engine_on_tick(e, &odd_side, &mut d),
            nq_status::NQ_ERR_INVALID_ARGUMENT
        );
        assert!(last_error(e).message_str().contains("side 7"));

        assert_eq!(nq_engine_on_tick(e, &tick, &mut d), nq_status::NQ_OK);
        reference
            .on_tick(&nq_formats::Tick {
                ts_ns: tick.ts_ns,
                price: tick.price,
                size: tick.size,
                side: nq_formats::Side::Buy,
            })
            .unwrap();
        let earlier = nq_tick {
            ts_ns: tick.ts_ns - 1,
            ..tick
        };
        assert_eq!(
            nq_engine_on_tick(e, &earlier, &mut d),
            nq_status::NQ_ERR_TICK_REJECTED
        );
        assert!(last_error(e)
            .message_str()
            .contains("earlier than the previous tick"));

        // Bars: inconsistent, and not later than the last one.
        let mut bad_bar = last;
        bad_bar.ts_ns += 120_000_000_000;
        bad_bar.low = bad_bar.high + 1.0;
        let (s, _) = bar_decision(e, &bad_bar);
        assert_eq!(s, nq_status::NQ_ERR_BAR_REJECTED);
        assert!(last_error(e).message_str().contains("low <= open"));
        let (s, _) = bar_decision(e, &bars[10]);
        assert_eq!(s, nq_status::NQ_ERR_BAR_REJECTED);
        assert!(last_error(e)
            .message_str()
            .contains("not later than the previous bar"));
        assert_eq!(
            nq_engine_on_bar(e, ptr::null(), &mut d),
            nq_status::NQ_ERR_NULL_POINTER
        );

        // Fills: position out of range, bad price, bracket on the wrong side.
        let fill = nq_fill {
            ts_ns: tick.ts_ns,
            position: 1,
            entry_price: last.close,
            ..Default::default()
        };
        for (bad, needle) in [
            (
                nq_fill {
                    position: 2,
                    ..fill
                },
                "-1, 0 or +1",
            ),
            (
                nq_fill {
                    position: 1 << 20,
                    ..fill
                },
                "-1, 0 or +1",
            ),
            (
                nq_fill {
                    entry_price: f64::INFINITY,
                    ..fill
                },
                "finite and positive",
            ),
            (
                nq_fill {
                    has_stop: 1,
                    stop_price: last.close + 10.0,
                    ..fill
                },
                "wrong side",
            ),
        ] {
            assert_eq!(nq_engine_on_fill(e, &bad), nq_status::NQ_ERR_FILL_REJECTED);
            let msg = last_error(e);
            assert!(msg.message_str().contains(needle), "{}", msg.message_str());
        }
        assert_eq!(
            nq_engine_on_fill(e, ptr::null()),
            nq_status::NQ_ERR_NULL_POINTER
        );

        // Inspection calls with NULL outputs.
        assert_eq!(
            nq_engine_decision_count(e, ptr::null_mut()),
            nq_status::NQ_ERR_NULL_POINTER
        );
        assert_eq!(
            nq_engine_layout_hash(e, ptr::null_mut()),
            nq_status::NQ_ERR_NULL_POINTER
        );
        assert_eq!(
            nq_engine_observation(e, ptr::null_mut(), ptr::null_mut()),
            nq_status::NQ_ERR_NULL_POINTER
        );
        assert_eq!(
            nq_engine_last_error(e, ptr::null_mut()),
            nq_status::NQ_ERR_NULL_POINTER
        );

        // None of that changed the engine: the next bar closes and decides.
        let mut count = 0u64;
        nq_engine_decision_count(e, &mut count);
        assert_eq!(count, count_before);
        let s = nq_engine_flush(e, tick.ts_ns + 60_000_000_000, &mut d);
        assert_eq!(s, nq_status::NQ_DECISION);
        let want = reference
            .flush(tick.ts_ns + 60_000_000_000)
            .decision
            .unwrap();
        assert_eq!(d.bar_ts_ns, want.bar_ts_ns);
        assert_eq!(
            d.position, want.position as i32,
            "the refused fills changed nothing"
        );
        assert_eq!(d.action, want.action.code() as i32);
        assert_eq!(d.probs, want.probs);
        assert_eq!(d.equity, want.equity);
        assert_eq!(nq_engine_deinit(e), nq_status::NQ_OK);
    }
}

#[test]
fn names_versions_and_feature_names() {
    assert_eq!(cstr(nq_version()), env!("CARGO_PKG_VERSION"));
    assert_eq!(cstr(nq_status_name(-8)), "NQ_ERR_TICK_REJECTED");
    assert_eq!(cstr(nq_status_name(1)), "NQ_DECISION");
    assert_eq!(cstr(nq_status_name(-99)), "NQ_UNKNOWN_STATUS");
    assert_eq!(cstr(nq_action_name(3)), "SL_TO_BE");
    assert!(nq_action_name(6).is_null() && nq_action_name(-1).is_null());
    assert!(nq_decision_kind_name(3).is_null());
    assert_ne!(nq_layout_hash(60), nq_layout_hash(300));

    let mut buf = [0 as std::ffi::c_char; 64];
    let layout = nq_formats::OBS_LAYOUT_V1;
    for index in 0..layout.obs_dim(2) {
        // SAFETY: `buf` holds 64 bytes.
        let s = unsafe { nq_obs_feature_name(index, buf.as_mut_ptr(), buf.len()) };
        assert_eq!(s, nq_status::NQ_OK);
        // SAFETY: NUL-terminated by the call.
        let name = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap();
        assert_eq!(name, layout.feature(index).unwrap().to_string());
    }
    // SAFETY (this block): buffers are valid for the lengths given.
    unsafe {
        let s = nq_obs_feature_name(layout.obs_dim(2), buf.as_mut_ptr(), buf.len());
        assert_eq!(s, nq_status::NQ_ERR_INVALID_ARGUMENT);
        let s = nq_obs_feature_name(0, buf.as_mut_ptr(), 4);
        assert_eq!(s, nq_status::NQ_ERR_BUFFER_TOO_SMALL);
        assert_eq!(
            CStr::from_ptr(buf.as_ptr()).to_bytes().len(),
            3,
            "truncated, NUL-terminated"
        );
        assert_eq!(
            nq_obs_feature_name(0, ptr::null_mut(), 8),
            nq_status::NQ_ERR_NULL_POINTER
        );
    }
}
