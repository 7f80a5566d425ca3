//! `nq_engine_init_with` / `nq_engine_new_with` options, trade events and
//! `nq_engine_end_of_data`, on the real data the other tests use:
//! - each option changes behaviour, and the engine equals the Rust engine
//!   built with the same `EngineConfig` bit for bit (decisions and events);
//! - default or NULL options equal `nq_engine_init`;
//! - bad options are `NQ_ERR_OPTIONS` with the field and value named;
//! - the events of every call equal the Rust engine's `Step`, the trades' net
//!   P&L adds up to the balance change, and `end_of_data` closes an open
//!   position.

mod common;

use std::ffi::CStr;
use std::ptr;

use nq_formats::{Bar, SessionHours, Side, Tick};
use nq_runtime::engine::{Decision, Engine, EngineConfig, Sampling, Step as RustStep};
use nq_runtime::policy::{Checkpoint, Policy};
use nq_runtime_ffi::*;

const MINUTE_NS: i64 = 60_000_000_000;

fn cstr(p: *const std::ffi::c_char) -> &'static str {
    assert!(!p.is_null());
    // SAFETY: the library returns static NUL-terminated strings.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap()
}

/// The Rust engine over `ckpt` with the checkpoint's settings changed by `edit`.
fn rust_engine(ckpt: &[u8], edit: impl FnOnce(&mut EngineConfig)) -> Engine<'_> {
    let policy = Policy::from_checkpoint(&Checkpoint::parse(ckpt).unwrap()).unwrap();
    let mut config = EngineConfig::from_policy(&policy);
    edit(&mut config);
    Engine::new(policy, config).unwrap()
}

/// An engine made through the C ABI with `options` (NULL for `None`), in
/// storage the caller keeps, or the error.
fn c_engine(
    storage: &mut [u64],
    ckpt: &[u8],
    options: Option<&nq_engine_options>,
) -> Result<*mut nq_engine, Box<nq_error>> {
    let mut err = nq_error::default();
    // SAFETY: the pointers and lengths describe live buffers.
    let e = unsafe {
        nq_engine_init_with(
            storage.as_mut_ptr().cast(),
            storage.len() * 8,
            ckpt.as_ptr(),
            ckpt.len(),
            options.map_or(ptr::null(), |o| o as *const _),
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

fn options() -> nq_engine_options {
    let mut o = std::mem::MaybeUninit::<nq_engine_options>::uninit();
    // SAFETY: a writable options struct; the call initialises all of it.
    assert_eq!(
        unsafe { nq_engine_options_default(o.as_mut_ptr()) },
        nq_status::NQ_OK
    );
    // SAFETY: written by the call above.
    unsafe { o.assume_init() }
}

fn session(text: &str) -> nq_engine_options {
    let mut o = options();
    assert!(o.set_session(text));
    o
}

fn rust_decision(d: &Decision) -> Vec<u64> {
    let mut v = vec![
        d.kind as i32 as u64,
        d.ts_ns as u64,
        d.bar_ts_ns as u64,
        d.action.code() as u64,
        d.position as i32 as u64,
        d.target_position as i32 as u64,
        d.stop_price.is_some() as u64,
        d.stop_price.unwrap_or(0.0).to_bits(),
        d.target_price.is_some() as u64,
        d.target_price.unwrap_or(0.0).to_bits(),
        d.n_actions as u64,
        d.mask.bits() as u64,
        d.close.to_bits(),
        d.atr.to_bits(),
        d.equity.to_bits(),
    ];
    v.extend(d.probs.iter().map(|p| p.to_bits() as u64));
    v
}

fn c_trade(t: &nq_trade) -> Vec<u64> {
    vec![
        t.side as u64,
        t.contracts as u64,
        t.entry_ts_ns as u64,
        t.exit_ts_ns as u64,
        t.entry_price.to_bits(),
        t.exit_price.to_bits(),
        t.gross_pnl.to_bits(),
        t.commission.to_bits(),
        t.net_pnl.to_bits(),
        t.exit_reason as u64,
        t.bars_held as u64,
        t.mae.to_bits(),
        t.mfe.to_bits(),
    ]
}

/// Every field of the events, floats as bits; zeroed parts included, so a
/// field set without its flag fails too.
fn c_events(ev: &nq_events) -> Vec<u64> {
    let f = &ev.entry;
    let mut v = vec![
        ev.has_entry as u64,
        ev.has_trade as u64,
        ev.breached as u64,
        f.ts_ns as u64,
        f.side as u64,
        f.contracts as u64,
        f.price.to_bits(),
        f.stop_price.to_bits(),
        f.target_price.to_bits(),
        f.commission.to_bits(),
    ];
    v.extend(c_trade(&ev.trade));
    v.extend([ev.closed_out as u64, ev.has_second_trade as u64]);
    v.extend(c_trade(&ev.second_trade));
    v
}

fn rust_events(step: &RustStep) -> Vec<u64> {
    let mut exits = step.exits();
    let (first, second) = (exits.next(), exits.next());
    let mut v = vec![
        step.entry.is_some() as u64,
        first.is_some() as u64,
        step.breached as u64,
    ];
    match step.entry {
        Some(f) => v.extend(common::entry_fill_bits(&f)),
        None => v.extend([0u64; 7]),
    }
    let trade = |t: Option<&nq_runtime::sim::TradeRecord>| match t {
        Some(t) => common::trade_record_bits(t),
        None => c_trade(&nq_trade::default()),
    };
    v.extend(trade(first));
    v.extend([step.closed_out as u64, second.is_some() as u64]);
    v.extend(trade(second));
    v
}

/// The Rust engine's decision and events for one call, as the C side's.
fn rust_step(step: &RustStep) -> (Option<Vec<u64>>, Vec<u64>) {
    (step.decision.as_ref().map(rust_decision), rust_events(step))
}

fn last_events(e: *mut nq_engine) -> nq_events {
    let mut ev = nq_events::default();
    // SAFETY: a live engine and a writable struct.
    assert_eq!(
        unsafe { nq_engine_last_events(e, &mut ev) },
        nq_status::NQ_OK
    );
    ev
}

/// What one call did: the decision (fields as bits) and the events.
type Step = (Option<Vec<u64>>, Vec<u64>);

fn c_bar(e: *mut nq_engine, b: &Bar) -> Step {
    let bar = nq_bar {
        ts_ns: b.ts_ns,
        open: b.open,
        high: b.high,
        low: b.low,
        close: b.close,
        volume: b.volume,
    };
    let mut d = nq_decision::default();
    // SAFETY: a live engine and valid pointers.
    let s = unsafe { nq_engine_on_bar(e, &bar, &mut d) };
    assert!(
        s == nq_status::NQ_OK || s == nq_status::NQ_DECISION,
        "{s:?}"
    );
    (
        (s == nq_status::NQ_DECISION).then(|| common::decision_bits(&d)),
        c_events(&last_events(e)),
    )
}

fn c_tick(e: *mut nq_engine, t: &Tick) -> Step {
    let tick = nq_tick {
        ts_ns: t.ts_ns,
        price: t.price,
        size: t.size,
        side: match t.side {
            Side::None => 0,
            Side::Buy => 1,
            Side::Sell => 2,
        },
    };
    let mut d = nq_decision::default();
    // SAFETY: a live engine and valid pointers.
    let s = unsafe { nq_engine_on_tick(e, &tick, &mut d) };
    assert!(
        s == nq_status::NQ_OK || s == nq_status::NQ_DECISION,
        "{s:?}"
    );
    (
        (s == nq_status::NQ_DECISION).then(|| common::decision_bits(&d)),
        c_events(&last_events(e)),
    )
}

/// Bars through both engines, every call compared; the C side's steps.
fn bars_through_both(e: *mut nq_engine, rust: &mut Engine<'_>, bars: &[Bar]) -> Vec<Step> {
    bars.iter()
        .enumerate()
        .map(|(i, b)| {
            let c = c_bar(e, b);
            let want = rust_step(&rust.on_bar(b).unwrap());
            assert_eq!(c, want, "bar {i} at {}", b.ts_ns);
            c
        })
        .collect()
}

fn decisions(steps: &[Step]) -> Vec<&Vec<u64>> {
    steps.iter().filter_map(|(d, _)| d.as_ref()).collect()
}

fn deinit(e: *mut nq_engine) {
    // SAFETY: made by nq_engine_init_with.
    assert_eq!(unsafe { nq_engine_deinit(e) }, nq_status::NQ_OK);
}

/// The default options, NULL options and `nq_engine_init` are one engine;
/// the boxed constructor with options is the same engine too.
#[test]
fn default_and_null_options_are_plain_init() {
    let ckpt = common::Aligned::new(&common::checkpoint(&common::Spec::default()));
    let bars = &common::real_bars()[..1_500];
    let run = |options: Option<&nq_engine_options>| {
        let mut storage = common::engine_storage();
        let e = c_engine(&mut storage, ckpt.bytes(), options).unwrap();
        let steps: Vec<Step> = bars.iter().map(|b| c_bar(e, b)).collect();
        deinit(e);
        steps
    };
    let mut storage = common::engine_storage();
    let plain = common::init_engine(&mut storage, ckpt.bytes());
    let want: Vec<Step> = bars.iter().map(|b| c_bar(plain, b)).collect();
    deinit(plain);
    assert!(decisions(&want).len() > 300);
    assert_eq!(run(None), want);
    assert_eq!(run(Some(&options())), want);

    let o = options();
    assert_eq!(
        o.struct_size as usize,
        std::mem::size_of::<nq_engine_options>()
    );
    assert_eq!(o.sampling, nq_sampling::NQ_SAMPLING_GREEDY as i32);
    assert!(o.commission_per_side.is_nan() && o.slippage_ticks.is_nan());
    assert!(o.drawdown_limit_usd.is_nan() && o.session[0] == 0);
    // SAFETY: NULL is answered, not written.
    assert_eq!(
        unsafe { nq_engine_options_default(ptr::null_mut()) },
        nq_status::NQ_ERR_NULL_POINTER
    );

    let mut err = nq_error::default();
    let sampled = nq_engine_options {
        sampling: nq_sampling::NQ_SAMPLING_SAMPLE as i32,
        seed: 11,
        ..options()
    };
    // SAFETY: the checkpoint outlives the engine.
    let boxed = unsafe {
        nq_engine_new_with(
            ckpt.bytes().as_ptr(),
            ckpt.bytes().len(),
            &sampled,
            &mut err,
        )
    };
    assert!(!boxed.is_null(), "{}", err.message_str());
    let mut storage = common::engine_storage();
    let in_storage = c_engine(&mut storage, ckpt.bytes(), Some(&sampled)).unwrap();
    for b in bars {
        assert_eq!(c_bar(boxed, b), c_bar(in_storage, b));
    }
    deinit(in_storage);
    // SAFETY: made by nq_engine_new_with.
    assert_eq!(unsafe { nq_engine_free(boxed) }, nq_status::NQ_OK);
}

/// A checkpoint trained with a $300 trailing limit breaches on real bars;
/// `drawdown_limit_usd = 0` removes the limit, a larger one moves the
/// breach; each equals the Rust engine with that `max_drawdown`.
#[test]
fn drawdown_limit_override() {
    let spec = common::Spec {
        max_drawdown: 300.0,
        ..Default::default()
    };
    let ckpt = common::Aligned::new(&common::checkpoint(&spec));
    let bars = &common::real_bars()[..4_000];
    let breaches = |steps: &[Step]| {
        steps
            .iter()
            .filter(|(d, _)| {
                d.as_ref()
                    .is_some_and(|d| d[0] == nq_decision_kind::NQ_KIND_DRAWDOWN_BREACHED as u64)
            })
            .count()
    };
    let first_breach = |steps: &[Step]| steps.iter().position(|(_, ev)| ev[2] != 0);
    let run = |limit: f64, want_limit: f64| {
        let mut storage = common::engine_storage();
        let o = nq_engine_options {
            drawdown_limit_usd: limit,
            ..options()
        };
        let e = c_engine(&mut storage, ckpt.bytes(), Some(&o)).unwrap();
        let mut rust = rust_engine(ckpt.bytes(), |c| c.sim.max_drawdown = want_limit);
        let steps = bars_through_both(e, &mut rust, bars);
        deinit(e);
        steps
    };
    let kept = run(f64::NAN, 300.0);
    assert!(breaches(&kept) > 0, "the $300 limit should breach");
    let kept_at = first_breach(&kept).expect("a breach event");
    let none = run(0.0, 0.0);
    assert_eq!(breaches(&none), 0);
    assert_eq!(first_breach(&none), None);
    let wider = run(600.0, 600.0);
    assert!(
        first_breach(&wider).is_none_or(|at| at > kept_at),
        "a wider limit breaches later or never"
    );
}

/// A session override decides on other bars: Globex hours on an RTH
/// checkpoint add the overnight bars; every spelling nq-eval accepts for a
/// session gives the same engine; a narrow custom session decides less.
#[test]
fn session_override_changes_which_bars_decide() {
    let ckpt = common::Aligned::new(&common::checkpoint(&common::Spec::default()));
    let bars = &common::real_bars()[..3_000];
    let run = |o: &nq_engine_options, want: SessionHours| {
        let mut storage = common::engine_storage();
        let e = c_engine(&mut storage, ckpt.bytes(), Some(o)).unwrap();
        let mut rust = rust_engine(ckpt.bytes(), |c| c.sim.session = want);
        let steps = bars_through_both(e, &mut rust, bars);
        deinit(e);
        steps
    };
    let rth = run(&options(), SessionHours::RTH);
    let globex = run(&session("GLOBEX"), SessionHours::GLOBEX);
    let (n_rth, n_globex) = (decisions(&rth).len(), decisions(&globex).len());
    assert!(
        n_globex > 2 * n_rth,
        "{n_globex} Globex vs {n_rth} RTH decisions"
    );
    for spelling in ["globex", "Globex", "eth", "18:00-17:00"] {
        assert_eq!(
            run(&session(spelling), SessionHours::GLOBEX),
            globex,
            "{spelling}"
        );
    }
    assert_eq!(run(&session("rth"), SessionHours::RTH), rth);
    assert_eq!(run(&session("9:30-16:00"), SessionHours::RTH), rth);
    let hour = SessionHours::parse("10:00-11:00").unwrap();
    let narrow = run(&session("10:00-11:00"), hour);
    let n_narrow = decisions(&narrow).len();
    assert!(
        n_narrow > 0 && n_narrow * 3 < n_rth,
        "{n_narrow} vs {n_rth}"
    );
}

/// Sampled decisions with a seed equal the Rust engine's
/// `Sampling::Sample { seed }`, repeat with the same seed, and differ from
/// another seed and from greedy.
#[test]
fn sampled_decisions_are_the_rust_engines_and_reproducible() {
    let ckpt = common::Aligned::new(&common::checkpoint(&common::Spec::default()));
    let bars = &common::real_bars()[..2_000];
    let run = |o: &nq_engine_options, sampling: Sampling| {
        let mut storage = common::engine_storage();
        let e = c_engine(&mut storage, ckpt.bytes(), Some(o)).unwrap();
        let mut rust = rust_engine(ckpt.bytes(), |c| c.sampling = sampling);
        let steps = bars_through_both(e, &mut rust, bars);
        deinit(e);
        steps
    };
    let sampled = |seed| nq_engine_options {
        sampling: nq_sampling::NQ_SAMPLING_SAMPLE as i32,
        seed,
        ..options()
    };
    let a = run(&sampled(42), Sampling::Sample { seed: 42 });
    assert_eq!(run(&sampled(42), Sampling::Sample { seed: 42 }), a);
    let b = run(&sampled(43), Sampling::Sample { seed: 43 });
    let greedy = run(&options(), Sampling::Greedy);
    let actions = |steps: &[Step]| -> Vec<u64> { decisions(steps).iter().map(|d| d[3]).collect() };
    assert_ne!(actions(&a), actions(&b), "another seed, other draws");
    assert_ne!(actions(&a), actions(&greedy), "sampled is not greedy");
    // The seed means nothing to a greedy engine.
    let greedy_seeded = nq_engine_options {
        seed: 42,
        ..options()
    };
    assert_eq!(run(&greedy_seeded, Sampling::Greedy), greedy);
}

/// Commission and slippage overrides reach every fill and trade, equal to
/// the Rust engine's; with both 0 a trade's net P&L is its gross.
#[test]
fn cost_overrides_reach_the_trades() {
    let ckpt = common::Aligned::new(&common::checkpoint(&common::Spec::default()));
    let bars = &common::real_bars()[..3_000];
    let trades = |commission: f64, slippage: f64| -> Vec<nq_trade> {
        let mut storage = common::engine_storage();
        let o = nq_engine_options {
            commission_per_side: commission,
            slippage_ticks: slippage,
            ..options()
        };
        let e = c_engine(&mut storage, ckpt.bytes(), Some(&o)).unwrap();
        let mut rust = rust_engine(ckpt.bytes(), |c| {
            c.sim.commission_per_side = commission;
            c.sim.slippage_ticks = slippage;
        });
        let mut out = Vec::new();
        for (i, b) in bars.iter().enumerate() {
            let (d, ev) = c_bar(e, b);
            assert_eq!((d, ev), rust_step(&rust.on_bar(b).unwrap()), "bar {i}");
            let events = last_events(e);
            if events.has_trade != 0 {
                out.push(events.trade);
            }
        }
        deinit(e);
        out
    };
    let free = trades(0.0, 0.0);
    assert!(free.len() > 10, "{} trades", free.len());
    for t in &free {
        assert_eq!(t.commission, 0.0);
        assert_eq!(t.net_pnl.to_bits(), t.gross_pnl.to_bits());
    }
    let costly = trades(4.0, 2.0);
    assert!(costly
        .iter()
        .all(|t| t.commission == 8.0 * t.contracts as f64));
    assert_ne!(
        free.iter()
            .map(|t| t.entry_price.to_bits())
            .collect::<Vec<_>>(),
        costly
            .iter()
            .map(|t| t.entry_price.to_bits())
            .collect::<Vec<_>>(),
        "slippage moves the fills"
    );
}

/// Out-of-range options are refused with `NQ_ERR_OPTIONS` and a message
/// naming the field and the value, by both constructors; nothing panics.
#[test]
fn bad_options_are_refused_with_the_field_named() {
    let ckpt = common::Aligned::new(&common::checkpoint(&common::Spec::default()));
    let o = options();
    let mut unterminated = o;
    unterminated.session = [b'1' as std::ffi::c_char; NQ_SESSION_LEN];
    let mut not_utf8 = o;
    not_utf8.session[..3].copy_from_slice(&[0xff_u8 as std::ffi::c_char, b'R' as _, b'T' as _]);
    let cases: Vec<(nq_engine_options, &[&str])> = vec![
        (
            nq_engine_options {
                struct_size: 0,
                ..o
            },
            &["options.struct_size = 0", "nq_engine_options_default"],
        ),
        (
            nq_engine_options {
                struct_size: o.struct_size - 8,
                ..o
            },
            &["options.struct_size = 48"],
        ),
        (
            nq_engine_options {
                struct_size: o.struct_size + 8,
                ..o
            },
            &["options.struct_size = 64"],
        ),
        (
            nq_engine_options { sampling: 2, ..o },
            &["options.sampling = 2", "0 greedy, 1 sample"],
        ),
        (
            nq_engine_options { sampling: -1, ..o },
            &["options.sampling = -1"],
        ),
        (
            nq_engine_options {
                commission_per_side: -2.5,
                ..o
            },
            &["options.commission_per_side = -2.5", ">= 0"],
        ),
        (
            nq_engine_options {
                commission_per_side: f64::INFINITY,
                ..o
            },
            &["options.commission_per_side = inf"],
        ),
        (
            nq_engine_options {
                slippage_ticks: -1.0,
                ..o
            },
            &["options.slippage_ticks = -1"],
        ),
        (
            nq_engine_options {
                slippage_ticks: 0.5,
                ..o
            },
            &["options.slippage_ticks = 0.5", "whole ticks"],
        ),
        (
            nq_engine_options {
                slippage_ticks: 1e6,
                ..o
            },
            &["options.slippage_ticks = 1000000", "at most 1000"],
        ),
        (
            nq_engine_options {
                commission_per_side: 5000.0,
                ..o
            },
            &["options.commission_per_side = 5000", "at most 1000"],
        ),
        (
            nq_engine_options {
                drawdown_limit_usd: -100.0,
                ..o
            },
            &["options.drawdown_limit_usd = -100", "0 = no limit"],
        ),
        (
            nq_engine_options {
                drawdown_limit_usd: f64::NEG_INFINITY,
                ..o
            },
            &["options.drawdown_limit_usd = -inf"],
        ),
        (
            session("9:3O-16:00"),
            &[
                "options.session \"9:3O-16:00\"",
                "expected HH:MM-HH:MM, RTH or GLOBEX",
            ],
        ),
        (session("RTHX"), &["options.session \"RTHX\""]),
        (session("25:00-16:00"), &["options.session \"25:00-16:00\""]),
        (session("09:30"), &["options.session \"09:30\""]),
        (unterminated, &["options.session has no terminating NUL"]),
        (not_utf8, &["options.session \"\\xffRT\""]),
    ];
    for (bad, needles) in cases {
        let mut storage = common::engine_storage();
        let err = c_engine(&mut storage, ckpt.bytes(), Some(&bad)).unwrap_err();
        let msg = err.message_str();
        assert_eq!(err.code, nq_status::NQ_ERR_OPTIONS as i32, "{msg}");
        for needle in needles {
            assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
        }
        let mut boxed_err = nq_error::default();
        // SAFETY: valid pointers; nothing is made.
        let boxed = unsafe {
            nq_engine_new_with(
                ckpt.bytes().as_ptr(),
                ckpt.bytes().len(),
                &bad,
                &mut boxed_err,
            )
        };
        assert!(boxed.is_null());
        assert_eq!(boxed_err.code, nq_status::NQ_ERR_OPTIONS as i32);
        assert_eq!(boxed_err.message_str(), msg);
    }
    assert_eq!(cstr(nq_status_name(-13)), "NQ_ERR_OPTIONS");
    assert_eq!(cstr(nq_status_name(2)), "NQ_TRADE_CLOSED");
    // A bad checkpoint is still a checkpoint error, whatever the options.
    let mut storage = common::engine_storage();
    let err = c_engine(&mut storage, &ckpt.bytes()[..10], Some(&o)).unwrap_err();
    assert_eq!(err.code, nq_status::NQ_ERR_CHECKPOINT_INVALID as i32);
}

/// A real replay with fills: 1,500 real bars, then the real NQM5 ticks, a
/// clock flush and `end_of_data`, through the C ABI and the Rust engine
/// side by side. The events of every call are equal field for field (both
/// with the checkpoint's costs and with overridden ones); the closed
/// trades' net P&L adds up to the change of the balance; every entry is
/// closed by the end.
#[test]
fn trade_events_equal_the_engines_and_add_up_to_the_balance() {
    let spec = common::Spec {
        session: SessionHours::GLOBEX,
        ..Default::default()
    };
    let ckpt = common::Aligned::new(&common::checkpoint(&spec));
    let all = common::real_bars();
    let bars = &all[all.len() - 1_500..];
    let ticks = common::real_ticks();
    for (commission, slippage) in [(f64::NAN, f64::NAN), (1.25, 2.0)] {
        let mut storage = common::engine_storage();
        let o = nq_engine_options {
            commission_per_side: commission,
            slippage_ticks: slippage,
            ..options()
        };
        let e = c_engine(&mut storage, ckpt.bytes(), Some(&o)).unwrap();
        let mut rust = rust_engine(ckpt.bytes(), |c| {
            if !commission.is_nan() {
                c.sim.commission_per_side = commission;
                c.sim.slippage_ticks = slippage;
            }
        });
        let start = rust.simulator().balance();
        let mut steps = bars_through_both(e, &mut rust, bars);
        for (i, t) in ticks.iter().enumerate() {
            let c = c_tick(e, t);
            let want = rust_step(&rust.on_tick(t).unwrap());
            assert_eq!(c, want, "tick {i} at {}", t.ts_ns);
            steps.push(c);
        }
        let end = ticks.last().unwrap().ts_ns + MINUTE_NS;
        let mut d = nq_decision::default();
        // SAFETY: a live engine and a writable decision.
        let s = unsafe { nq_engine_flush(e, end, &mut d) };
        let want = rust.flush(end);
        assert_eq!(s == nq_status::NQ_DECISION, want.decision.is_some());
        let events = c_events(&last_events(e));
        assert_eq!(events, rust_events(&want));
        steps.push((None, events));
        let mut trade = nq_trade::default();
        // SAFETY: as above.
        let s = unsafe { nq_engine_end_of_data(e, end, &mut trade) };
        let want = rust.end_of_data(end);
        let closed = want.exits().next();
        assert_eq!(s == nq_status::NQ_TRADE_CLOSED, closed.is_some());
        assert_eq!(s == nq_status::NQ_OK, closed.is_none());
        if let Some(closed) = closed {
            assert_eq!(c_trade(&trade), common::trade_record_bits(closed));
        }
        let events = c_events(&last_events(e));
        assert_eq!(events, rust_events(&want));
        steps.push((None, events));

        let entries = steps.iter().filter(|(_, ev)| ev[0] != 0).count();
        let closed: Vec<f64> = steps
            .iter()
            .filter(|(_, ev)| ev[1] != 0)
            .map(|(_, ev)| f64::from_bits(ev[18]))
            .collect();
        let on_ticks = steps[bars.len()..]
            .iter()
            .filter(|(_, ev)| ev[1] != 0)
            .count();
        assert!(
            closed.len() > 20 && on_ticks > 5,
            "{} trades, {on_ticks} on ticks",
            closed.len()
        );
        assert_eq!(entries, closed.len(), "every entry closed by the end");
        let sum: f64 = closed.iter().sum();
        let change = rust.simulator().balance() - start;
        assert!(
            (sum - change).abs() < 1e-6,
            "trades {sum} vs balance change {change}"
        );
        assert_eq!(rust.simulator().position_side(), 0);
        assert_eq!(
            rust.simulator().equity_at_last(),
            rust.simulator().balance()
        );
        deinit(e);
    }
}

/// `nq_engine_end_of_data` closes an open position as END_OF_DATA at the
/// given time and leaves the engine usable; flat, it answers `NQ_OK` with
/// a zeroed trade. Refused calls leave no events; fills do not touch them.
#[test]
fn end_of_data_closes_an_open_position() {
    let ckpt = common::Aligned::new(&common::checkpoint(&common::Spec::default()));
    let bars = common::real_bars();
    let mut storage = common::engine_storage();
    let e = c_engine(&mut storage, ckpt.bytes(), None).unwrap();
    let mut rust = rust_engine(ckpt.bytes(), |_| {});
    let mut k = 0;
    // Until an entry has filled and the position is still open after the bar.
    loop {
        let (_, ev) = c_bar(e, &bars[k]);
        rust.on_bar(&bars[k]).unwrap();
        k += 1;
        if ev[0] != 0 && rust.simulator().position_side() != 0 {
            break;
        }
        assert!(k < 3_000, "no open position on the real bars");
    }
    let side = rust.simulator().position_side() as i32;
    let at = bars[k - 1].ts_ns + MINUTE_NS;
    let mut trade = nq_trade::default();
    // SAFETY (this block): a live engine and valid pointers.
    unsafe {
        assert_eq!(
            nq_engine_end_of_data(e, at, &mut trade),
            nq_status::NQ_TRADE_CLOSED
        );
        let want = *rust.end_of_data(at).exits().next().unwrap();
        assert_eq!(c_trade(&trade), common::trade_record_bits(&want));
        assert_eq!(trade.side, side);
        assert_eq!(trade.exit_ts_ns, at);
        assert_eq!(cstr(nq_exit_reason_name(trade.exit_reason)), "END_OF_DATA");
        assert_eq!(
            trade.exit_reason,
            nq_exit_reason::NQ_EXIT_END_OF_DATA as i32
        );
        let ev = last_events(e);
        assert!(ev.has_trade != 0 && ev.has_entry == 0);
        assert_eq!(c_trade(&ev.trade), c_trade(&trade));

        // Flat now: nothing to close, the trade zeroed.
        let mut again = trade;
        assert_eq!(
            nq_engine_end_of_data(e, at + 1, &mut again),
            nq_status::NQ_OK
        );
        assert_eq!(again, nq_trade::default());
        assert_eq!(last_events(e), nq_events::default());
        assert_eq!(
            nq_engine_end_of_data(e, at, ptr::null_mut()),
            nq_status::NQ_ERR_NULL_POINTER
        );
        assert_eq!(
            nq_engine_last_events(e, ptr::null_mut()),
            nq_status::NQ_ERR_NULL_POINTER
        );

        // Still usable: the next bars decide as the Rust engine does.
        let steps = bars_through_both(e, &mut rust, &bars[k..k + 200]);
        assert!(!decisions(&steps).is_empty());

        // A fill report's events are its own: a report of flat closes the
        // simulated position (EXTERNAL), as the Rust engine's step says.
        let mut next = k + 200;
        loop {
            let (_, ev) = c_bar(e, &bars[next]);
            rust.on_bar(&bars[next]).unwrap();
            next += 1;
            if ev[0] != 0 && rust.simulator().position_side() != 0 {
                break;
            }
        }
        let fill = nq_fill {
            ts_ns: bars[next].ts_ns,
            position: 0,
            ..Default::default()
        };
        assert_eq!(nq_engine_on_fill(e, &fill), nq_status::NQ_OK);
        let want = rust
            .on_fill(&nq_runtime::engine::FillReport {
                ts_ns: fill.ts_ns,
                position: 0,
                entry_price: 0.0,
                stop_price: None,
                target_price: None,
            })
            .unwrap();
        let ev = last_events(e);
        assert_eq!(c_events(&ev), rust_events(&want));
        assert!(ev.has_trade != 0, "the held position is closed");
        assert_eq!(
            ev.trade.exit_reason,
            nq_exit_reason::NQ_EXIT_EXTERNAL as i32
        );
        let bad = nq_tick {
            ts_ns: at,
            price: f64::NAN,
            size: 1.0,
            side: 0,
        };
        let mut d = nq_decision::default();
        assert_eq!(
            nq_engine_on_tick(e, &bad, &mut d),
            nq_status::NQ_ERR_TICK_REJECTED
        );
        assert_eq!(last_events(e), nq_events::default());
    }
    assert_eq!(
        // SAFETY: a released engine's storage is still allocated.
        unsafe {
            deinit(e);
            let mut ev = nq_events::default();
            nq_engine_last_events(e, &mut ev)
        },
        nq_status::NQ_ERR_NOT_AN_ENGINE
    );
}
