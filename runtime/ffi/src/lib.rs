//! The C ABI of the nq runtime: `libnq_runtime_ffi.a` / `libnq_runtime_ffi.so` and
//! `include/nq_runtime.h`, for execution systems not written in Rust.
//!
//! One `nq_engine` wraps one [`Engine`] over a checkpoint buffer that the
//! caller owns. The engine lives in caller-provided storage
//! ([`nq_engine_init`], no allocation at all) or in a box
//! ([`nq_engine_new`] / [`nq_engine_free`]). Feeding ticks, bars, clock
//! flushes and fills, and the optional idle-time [`nq_engine_prepare`],
//! never allocate: decisions are written into caller structs and error
//! messages into a fixed buffer inside the engine.
//!
//! [`nq_engine_init_with`] / [`nq_engine_new_with`] take an
//! [`nq_engine_options`] that overrides the checkpoint's simulator settings
//! (commission, slippage, drawdown limit, session, parsed as `nq-eval`
//! parses its flags) and picks greedy or seeded sampled decisions. What the
//! simulated account did on each call (entry fill, closed trade, drawdown
//! breach) is read with [`nq_engine_last_events`];
//! [`nq_engine_end_of_data`] closes the simulated position when a replay
//! ends.
//!
//! The crate is `std` (a hosted C library), because it has to stop panics at
//! the boundary: every entry point runs under `catch_unwind`. A panic would be
//! a bug in the runtime; it is reported as `NQ_ERR_INTERNAL` and poisons the
//! engine, since its state may be half-updated. Null pointers, short or
//! misaligned storage, unknown enum codes and engines that were never
//! initialised (or already released) are reported as error codes, never
//! dereferenced.
//!
//! Threading: an engine has no global or thread-local state and may be moved
//! between threads, but calls on one engine must not overlap (the C side
//! holds the only `&mut`). Distinct engines are independent.
#![deny(unsafe_op_in_unsafe_fn)]
// The exported names are the C names; the header is generated from them.
#![allow(non_camel_case_types)]

use core::ffi::{c_char, c_void};
use core::fmt::{self, Write as _};
use core::mem::{align_of, size_of};
use core::ptr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use nq_formats::{Action, Bar, SessionHours, Side, Tick, OBS_LAYOUT_V1};
use nq_runtime::engine::Step;
use nq_runtime::engine::{
    Decision, DecisionKind, Engine, EngineConfig, EngineError, FillReport, Sampling,
};
use nq_runtime::features::BarRejected;
use nq_runtime::policy::{Checkpoint, Policy, PolicyError, MAX_ACTIONS};
use nq_runtime::sim::{ExitReason, TradeRecord};

/// Entries of `nq_decision.probs`: the largest action set (phase 2).
pub const NQ_MAX_ACTIONS: usize = 6;
/// Size of `nq_error.message`, terminating NUL included.
pub const NQ_ERROR_MESSAGE_LEN: usize = 256;

const _: () = assert!(NQ_MAX_ACTIONS == MAX_ACTIONS);

/// Result of every fallible call. `NQ_OK`, `NQ_DECISION` and
/// `NQ_TRADE_CLOSED` are successes; every negative value is an error whose
/// message is in the `nq_error` passed to the call (creation) or in
/// `nq_engine_last_error`.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nq_status {
    /// Success; for the feeding calls: no decision was made.
    NQ_OK = 0,
    /// A decision was written to the caller's `nq_decision`.
    NQ_DECISION = 1,
    /// `nq_engine_end_of_data` closed a position; the trade was written to
    /// the caller's `nq_trade`.
    NQ_TRADE_CLOSED = 2,
    /// A required pointer argument is NULL.
    NQ_ERR_NULL_POINTER = -1,
    /// The storage given to `nq_engine_init` is shorter than `nq_engine_size()`.
    NQ_ERR_STORAGE_TOO_SMALL = -2,
    /// The storage given to `nq_engine_init` is not aligned to `nq_engine_align()`.
    NQ_ERR_STORAGE_MISALIGNED = -3,
    /// The checkpoint is not a valid nq-policy safetensors file (truncated,
    /// malformed header, missing or bad metadata, bad tensor shapes or values).
    NQ_ERR_CHECKPOINT_INVALID = -4,
    /// The checkpoint is valid but was made for another observation layout
    /// (layout hash or observation size differ from this runtime's).
    NQ_ERR_CHECKPOINT_MISMATCH = -5,
    /// The pointer is not a live engine: never initialised, released by
    /// `nq_engine_deinit`/`nq_engine_free`, or released the wrong way.
    NQ_ERR_NOT_AN_ENGINE = -6,
    /// An argument is out of range (an unknown side or action code, an index
    /// past the end).
    NQ_ERR_INVALID_ARGUMENT = -7,
    /// The tick was refused (NaN or non-positive price, negative size, time
    /// going backwards); the engine is unchanged.
    NQ_ERR_TICK_REJECTED = -8,
    /// The bar was refused (inconsistent prices or volume, not later than the
    /// previous bar); the engine is unchanged.
    NQ_ERR_BAR_REJECTED = -9,
    /// The fill report was refused (position not -1/0/+1, bad price, bracket
    /// on the wrong side); the engine is unchanged.
    NQ_ERR_FILL_REJECTED = -10,
    /// The caller's buffer is too small for the text asked for.
    NQ_ERR_BUFFER_TOO_SMALL = -11,
    /// A bug in the runtime was caught at the boundary; the engine is poisoned
    /// and refuses further calls. Please report it with the message.
    NQ_ERR_INTERNAL = -12,
    /// An `nq_engine_options` field is out of range or unreadable (the
    /// message names the field and its value); no engine was made.
    NQ_ERR_OPTIONS = -13,
}

impl nq_status {
    const ALL: [nq_status; 16] = [
        nq_status::NQ_OK,
        nq_status::NQ_DECISION,
        nq_status::NQ_TRADE_CLOSED,
        nq_status::NQ_ERR_NULL_POINTER,
        nq_status::NQ_ERR_STORAGE_TOO_SMALL,
        nq_status::NQ_ERR_STORAGE_MISALIGNED,
        nq_status::NQ_ERR_CHECKPOINT_INVALID,
        nq_status::NQ_ERR_CHECKPOINT_MISMATCH,
        nq_status::NQ_ERR_NOT_AN_ENGINE,
        nq_status::NQ_ERR_INVALID_ARGUMENT,
        nq_status::NQ_ERR_TICK_REJECTED,
        nq_status::NQ_ERR_BAR_REJECTED,
        nq_status::NQ_ERR_FILL_REJECTED,
        nq_status::NQ_ERR_BUFFER_TOO_SMALL,
        nq_status::NQ_ERR_INTERNAL,
        nq_status::NQ_ERR_OPTIONS,
    ];

    /// The variant's name, NUL-terminated for C.
    const fn c_name(self) -> &'static str {
        match self {
            nq_status::NQ_OK => "NQ_OK\0",
            nq_status::NQ_DECISION => "NQ_DECISION\0",
            nq_status::NQ_TRADE_CLOSED => "NQ_TRADE_CLOSED\0",
            nq_status::NQ_ERR_NULL_POINTER => "NQ_ERR_NULL_POINTER\0",
            nq_status::NQ_ERR_STORAGE_TOO_SMALL => "NQ_ERR_STORAGE_TOO_SMALL\0",
            nq_status::NQ_ERR_STORAGE_MISALIGNED => "NQ_ERR_STORAGE_MISALIGNED\0",
            nq_status::NQ_ERR_CHECKPOINT_INVALID => "NQ_ERR_CHECKPOINT_INVALID\0",
            nq_status::NQ_ERR_CHECKPOINT_MISMATCH => "NQ_ERR_CHECKPOINT_MISMATCH\0",
            nq_status::NQ_ERR_NOT_AN_ENGINE => "NQ_ERR_NOT_AN_ENGINE\0",
            nq_status::NQ_ERR_INVALID_ARGUMENT => "NQ_ERR_INVALID_ARGUMENT\0",
            nq_status::NQ_ERR_TICK_REJECTED => "NQ_ERR_TICK_REJECTED\0",
            nq_status::NQ_ERR_BAR_REJECTED => "NQ_ERR_BAR_REJECTED\0",
            nq_status::NQ_ERR_FILL_REJECTED => "NQ_ERR_FILL_REJECTED\0",
            nq_status::NQ_ERR_BUFFER_TOO_SMALL => "NQ_ERR_BUFFER_TOO_SMALL\0",
            nq_status::NQ_ERR_INTERNAL => "NQ_ERR_INTERNAL\0",
            nq_status::NQ_ERR_OPTIONS => "NQ_ERR_OPTIONS\0",
        }
    }
}

/// Why a decision was emitted (`nq_decision.kind`).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nq_decision_kind {
    /// The policy chose `action` among the allowed ones.
    NQ_KIND_POLICY = 0,
    /// The session's last bar: go flat (target position 0), no policy involved.
    NQ_KIND_SESSION_END = 1,
    /// The trailing drawdown was breached: flat, and only HOLD until the session ends.
    NQ_KIND_DRAWDOWN_BREACHED = 2,
}

/// Action codes (`nq_decision.action`), the same codes checkpoints, reports
/// and `nq-signal` use. Phase-1 checkpoints only output the first three.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nq_action {
    NQ_ACTION_HOLD = 0,
    NQ_ACTION_BUY = 1,
    NQ_ACTION_SELL = 2,
    /// Move the stop to entry plus one tick in favour.
    NQ_ACTION_SL_TO_BE = 3,
    /// Move the stop one ATR step toward price.
    NQ_ACTION_TRAIL_TIGHTEN = 4,
    /// Move the stop one ATR step away from price.
    NQ_ACTION_TRAIL_LOOSEN = 5,
}

/// Aggressor side of a trade (`nq_tick.side`).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nq_side {
    /// Unknown or not applicable.
    NQ_SIDE_NONE = 0,
    /// The buyer crossed the spread.
    NQ_SIDE_BUY = 1,
    /// The seller crossed the spread.
    NQ_SIDE_SELL = 2,
}

/// One trade print.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct nq_tick {
    /// Nanoseconds since the Unix epoch, UTC.
    pub ts_ns: i64,
    pub price: f64,
    /// Contracts traded; not negative.
    pub size: f64,
    /// An `nq_side` code; any other value is `NQ_ERR_INVALID_ARGUMENT`.
    pub side: i32,
}

/// One closed time bar, stamped with its start.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct nq_bar {
    /// Bar start, nanoseconds since the Unix epoch, UTC.
    pub ts_ns: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

/// A fill report or position correction from the execution system; it
/// overrides the engine's simulated position.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct nq_fill {
    pub ts_ns: i64,
    /// The position after the fill: -1, 0 or +1 (one contract).
    pub position: i32,
    /// Average entry price of the position (ignored when flat).
    pub entry_price: f64,
    /// Non-zero when `stop_price` holds the working stop; zero keeps the
    /// engine's own (from the entry and the ATR). Before the first bar the
    /// engine has no ATR: it places the legs you left out at the first bar
    /// close, from the entry and that bar's ATR.
    pub has_stop: u8,
    pub stop_price: f64,
    /// Non-zero when `target_price` holds the working target.
    pub has_target: u8,
    pub target_price: f64,
}

/// One decision, made at a bar's close.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct nq_decision {
    /// An `nq_decision_kind` code.
    pub kind: i32,
    /// The decision instant: the bar's end (UTC ns).
    pub ts_ns: i64,
    /// Start of the bar that closed (UTC ns).
    pub bar_ts_ns: i64,
    /// An `nq_action` code.
    pub action: i32,
    /// The position before the decision: -1, 0, +1.
    pub position: i32,
    /// The position to hold after it: -1, 0, +1. Trade to it from the
    /// position you really hold (`target_position - yours`), never from
    /// `position`, the engine's view: then no decision doubles a position.
    pub target_position: i32,
    /// Non-zero when `stop_price` is set (never when the target position is flat).
    /// For an entry it is indicative, placed from the bar's close; the fill
    /// price sets the exact one.
    pub has_stop: u8,
    pub stop_price: f64,
    /// Non-zero when `target_price` is set.
    pub has_target: u8,
    pub target_price: f64,
    /// Masked softmax over the checkpoint's actions; entries from `n_actions`
    /// on are 0.
    pub probs: [f32; NQ_MAX_ACTIONS],
    /// 3 (phase 1) or 6 (phase 2).
    pub n_actions: u32,
    /// Bit `i` set = action code `i` was allowed. HOLD (bit 0) always is.
    pub mask: u32,
    /// Close of the bar and ATR at the decision (points).
    pub close: f64,
    pub atr: f64,
    /// Account equity marked at the close (dollars).
    pub equity: f64,
}

/// How the engine picks among the allowed actions (`nq_engine_options.sampling`).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nq_sampling {
    /// The most probable allowed action (the default, as in evaluation).
    NQ_SAMPLING_GREEDY = 0,
    /// A draw from the masked softmax with a generator seeded by
    /// `nq_engine_options.seed`: the same seed and inputs give the same draws.
    NQ_SAMPLING_SAMPLE = 1,
}

/// Why a position was closed (`nq_trade.exit_reason`); `nq_exit_reason_name`
/// gives the name written to the `exit_reason` column of `trades.parquet`.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nq_exit_reason {
    /// The policy closed it (long + SELL, short + BUY).
    NQ_EXIT_SIGNAL = 0,
    /// The protective stop (initial or moved) was hit.
    NQ_EXIT_STOP = 1,
    /// The profit target was hit.
    NQ_EXIT_TARGET = 2,
    /// Flattened at the end of the session.
    NQ_EXIT_SESSION_END = 3,
    /// The trailing drawdown limit was breached.
    NQ_EXIT_DRAWDOWN = 4,
    /// Flattened by `nq_engine_end_of_data`.
    NQ_EXIT_END_OF_DATA = 5,
    /// The execution system reported the position gone.
    NQ_EXIT_EXTERNAL = 6,
}

/// Bytes of `nq_engine_options.session`, terminating NUL included.
pub const NQ_SESSION_LEN: usize = 16;

/// Settings that replace the checkpoint's own when an engine is made
/// (`nq_engine_init_with` / `nq_engine_new_with`), the same overrides as
/// `nq-eval` / `nq-signal` flags. Fill it with `nq_engine_options_default`
/// (which keeps every checkpoint setting and decides greedily), then change
/// the fields wanted.
///
/// `struct_size` comes first so the struct can grow: newer fields go at the
/// end, and the library tells versions apart by the size the caller was
/// compiled with.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct nq_engine_options {
    /// `sizeof(nq_engine_options)` as the caller compiled it (set by
    /// `nq_engine_options_default`). There is one version so far, 56 bytes;
    /// any other size is `NQ_ERR_OPTIONS`, never read past.
    pub struct_size: u32,
    /// An `nq_sampling` code.
    pub sampling: i32,
    /// Seed of the sampling generator (used with `NQ_SAMPLING_SAMPLE`).
    pub seed: u64,
    /// Commission per contract per side, dollars (0 to 1000); NaN keeps
    /// the checkpoint's.
    pub commission_per_side: f64,
    /// Slippage per market fill, whole ticks (0 to 1000; a fraction is
    /// `NQ_ERR_OPTIONS`, as `--slippage-ticks`); NaN keeps the checkpoint's.
    pub slippage_ticks: f64,
    /// Trailing drawdown from the equity high that ends trading, dollars;
    /// 0 = no limit, NaN keeps the checkpoint's.
    pub drawdown_limit_usd: f64,
    /// Session hours in New York time, NUL-terminated: "RTH" (09:30-16:00),
    /// "GLOBEX" (18:00-17:00), or "HH:MM-HH:MM", as `nq-eval --session`
    /// reads them; empty keeps the checkpoint's.
    pub session: [c_char; NQ_SESSION_LEN],
}

/// An entry order filled and a position (with its bracket) opened.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct nq_entry_fill {
    pub ts_ns: i64,
    /// +1 long, -1 short.
    pub side: i32,
    pub contracts: i32,
    /// Fill price, slippage included, on the tick grid.
    pub price: f64,
    pub stop_price: f64,
    pub target_price: f64,
    /// Commission charged for this side, dollars.
    pub commission: f64,
}

/// One closed round trip, as a `trades.parquet` row. Money in dollars.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct nq_trade {
    /// +1 long, -1 short.
    pub side: i32,
    pub contracts: i32,
    pub entry_ts_ns: i64,
    pub exit_ts_ns: i64,
    pub entry_price: f64,
    pub exit_price: f64,
    /// (exit - entry) x side x point value x contracts.
    pub gross_pnl: f64,
    /// Both sides.
    pub commission: f64,
    /// `gross_pnl - commission`: what the trade did to the balance.
    pub net_pnl: f64,
    /// An `nq_exit_reason` code.
    pub exit_reason: i32,
    /// Bars that closed while the position was open.
    pub bars_held: u32,
    /// Worst open P&L during the trade, before costs (<= 0).
    pub mae: f64,
    /// Best open P&L during the trade, before costs (>= 0).
    pub mfe: f64,
}

/// What the last `nq_engine_on_tick`, `_on_bar`, `_flush`, `_on_fill` or
/// `_end_of_data` call did to the simulated account: at most one entry and
/// two closed trades, in the order they closed, and whether the drawdown
/// limit was breached in it. Fields without their `has_` flag are zero.
///
/// A second trade is rare: the close-out of a session that ended before the
/// call (`closed_out`), then a trade of the new session stopped out on the
/// same input.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct nq_events {
    /// Non-zero when `entry` holds a fill.
    pub has_entry: u8,
    /// Non-zero when `trade` holds a closed trade.
    pub has_trade: u8,
    /// Non-zero when the trailing drawdown was breached during the call.
    pub breached: u8,
    /// Non-zero when `trade` is the close-out of a session that ended
    /// before this call (the market stopped before its end): it is dated at
    /// that session's last bar's end, earlier than the call's input.
    pub closed_out: u8,
    /// Non-zero when `second_trade` holds a second closed trade.
    pub has_second_trade: u8,
    pub entry: nq_entry_fill,
    pub trade: nq_trade,
    pub second_trade: nq_trade,
}

/// An error code with its message, NUL-terminated and truncated to fit.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nq_error {
    /// An `nq_status` code.
    pub code: i32,
    pub message: [c_char; NQ_ERROR_MESSAGE_LEN],
}

impl Default for nq_error {
    fn default() -> Self {
        nq_error {
            code: nq_status::NQ_OK as i32,
            message: [0; NQ_ERROR_MESSAGE_LEN],
        }
    }
}

impl nq_error {
    /// The message as text (for Rust callers and tests).
    pub fn message_str(&self) -> &str {
        let len = self
            .message
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(NQ_ERROR_MESSAGE_LEN);
        // SAFETY: c_char and u8 have the same size and alignment.
        let bytes = unsafe { &*(&self.message[..len] as *const [c_char] as *const [u8]) };
        core::str::from_utf8(bytes).unwrap_or("<message is not UTF-8>")
    }

    fn set(&mut self, code: nq_status, args: fmt::Arguments<'_>) {
        self.code = code as i32;
        let mut w = MessageWriter {
            buf: &mut self.message,
            len: 0,
        };
        // Truncation is not an error: the writer keeps what fits.
        let _ = w.write_fmt(args);
        let end = w.len;
        self.message[end] = 0;
    }
}

/// Formats into the fixed message buffer, keeping room for the NUL and
/// cutting on a character boundary so the text stays valid UTF-8.
struct MessageWriter<'a> {
    buf: &'a mut [c_char; NQ_ERROR_MESSAGE_LEN],
    len: usize,
}

impl fmt::Write for MessageWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = NQ_ERROR_MESSAGE_LEN - 1 - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        for (dst, &b) in self.buf[self.len..self.len + take]
            .iter_mut()
            .zip(s.as_bytes())
        {
            *dst = b as c_char;
        }
        self.len += take;
        if take < s.len() {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

const MAGIC_LIVE: u64 = 0x6e71_5f65_6e67_696e; // "nq_engin"
const MAGIC_POISONED: u64 = 0x6e71_5f70_6f69_736e; // "nq_poisn"
const MAGIC_RELEASED: u64 = 0;

/// An engine as C sees it: opaque, created by `nq_engine_init` or
/// `nq_engine_new`.
pub struct nq_engine {
    /// Tells a live engine from storage that was never initialised or was
    /// released, and a poisoned one from a healthy one.
    magic: u64,
    /// Created by `nq_engine_new`: only `nq_engine_free` may release it.
    boxed: bool,
    last_error: nq_error,
    /// What the last feeding call did; `None` before the first one and
    /// after a refused one (the C side then sees no events).
    last_step: Option<Step>,
    /// Borrows the caller's checkpoint buffer; `'static` stands for "as long
    /// as the caller keeps it", which the header makes the caller's duty.
    engine: Engine<'static>,
}

impl nq_engine {
    fn fail(&mut self, code: nq_status, args: fmt::Arguments<'_>) -> nq_status {
        self.last_error.set(code, args);
        code
    }
}

fn status_of(e: &EngineError) -> nq_status {
    match e {
        EngineError::Policy(
            PolicyError::LayoutHashMismatch { .. } | PolicyError::ObsDimMismatch { .. },
        )
        | EngineError::InstrumentMismatch { .. }
        | EngineError::BarSecondsMismatch { .. }
        | EngineError::ActionSetMismatch { .. } => nq_status::NQ_ERR_CHECKPOINT_MISMATCH,
        _ => nq_status::NQ_ERR_CHECKPOINT_INVALID,
    }
}

/// Runs `body`, turning a panic into `on_panic()` so that none unwinds into C.
fn guard<T>(on_panic: impl FnOnce() -> T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| on_panic())
}

/// Writes `code` and the message into `err` when it is not NULL.
///
/// # Safety
/// `err` is NULL or valid for writes of an `nq_error`.
unsafe fn report(err: *mut nq_error, code: nq_status, args: fmt::Arguments<'_>) -> nq_status {
    // SAFETY: the caller's contract.
    if let Some(err) = unsafe { err.as_mut() } {
        err.set(code, args);
    }
    code
}

/// The engine behind `engine`, if it points at a live one; otherwise the
/// status to return.
///
/// # Safety
/// `engine` is NULL or points at readable memory of `nq_engine_size()` bytes
/// (a live or released engine; the magic number tells which).
unsafe fn live<'e>(engine: *mut nq_engine) -> Result<&'e mut nq_engine, nq_status> {
    if engine.is_null() {
        return Err(nq_status::NQ_ERR_NULL_POINTER);
    }
    if engine.cast::<u8>().align_offset(align_of::<nq_engine>()) != 0 {
        return Err(nq_status::NQ_ERR_NOT_AN_ENGINE);
    }
    // SAFETY: non-null and aligned; the caller promises the memory is an
    // engine's, and only the magic number is trusted before checking it.
    let magic = unsafe { ptr::addr_of!((*engine).magic).read() };
    match magic {
        MAGIC_LIVE => Ok(unsafe { &mut *engine }),
        MAGIC_POISONED => {
            // SAFETY: a poisoned engine was live, so its error buffer is valid.
            let e = unsafe { &mut *engine };
            Err(e.fail(
                nq_status::NQ_ERR_INTERNAL,
                format_args!("engine poisoned by an earlier internal error; create a new one"),
            ))
        }
        _ => Err(nq_status::NQ_ERR_NOT_AN_ENGINE),
    }
}

/// Runs `body` on the live engine behind `engine` under the panic guard.
///
/// # Safety
/// As [`live`].
unsafe fn with_engine(
    engine: *mut nq_engine,
    body: impl FnOnce(&mut nq_engine) -> nq_status,
) -> nq_status {
    // SAFETY: the caller's contract.
    let e = match unsafe { live(engine) } {
        Ok(e) => e,
        Err(status) => return status,
    };
    guard(
        || {
            // The body may have left the engine half-updated: refuse it from now on.
            // SAFETY: the engine was live on entry; the magic and error buffer
            // are plain data that a panic cannot have invalidated.
            let e = unsafe { &mut *engine };
            e.magic = MAGIC_POISONED;
            e.fail(
                nq_status::NQ_ERR_INTERNAL,
                format_args!("internal error (panic) in the runtime; engine poisoned"),
            )
        },
        || body(e),
    )
}

/// A getter of one number: `*out = value(engine)`, or an error naming
/// `function` when `out` is NULL.
///
/// # Safety
/// As [`live`]; `out` NULL or writable.
unsafe fn read_u64(
    engine: *mut nq_engine,
    out: *mut u64,
    function: &str,
    value: impl FnOnce(&nq_engine) -> u64,
) -> nq_status {
    let body = |e: &mut nq_engine| {
        // SAFETY: the caller's contract on `out`.
        let Some(out) = (unsafe { out.as_mut() }) else {
            return e.fail(
                nq_status::NQ_ERR_NULL_POINTER,
                format_args!("{function}: out is NULL"),
            );
        };
        *out = value(e);
        nq_status::NQ_OK
    };
    // SAFETY: the caller's contract.
    unsafe { with_engine(engine, body) }
}

fn write_decision(d: &Decision, out: &mut nq_decision) {
    *out = nq_decision {
        kind: match d.kind {
            DecisionKind::Policy => nq_decision_kind::NQ_KIND_POLICY,
            DecisionKind::SessionEnd => nq_decision_kind::NQ_KIND_SESSION_END,
            DecisionKind::DrawdownBreached => nq_decision_kind::NQ_KIND_DRAWDOWN_BREACHED,
        } as i32,
        ts_ns: d.ts_ns,
        bar_ts_ns: d.bar_ts_ns,
        action: d.action.code() as i32,
        position: d.position as i32,
        target_position: d.target_position as i32,
        has_stop: d.stop_price.is_some() as u8,
        stop_price: d.stop_price.unwrap_or(0.0),
        has_target: d.target_price.is_some() as u8,
        target_price: d.target_price.unwrap_or(0.0),
        probs: d.probs,
        n_actions: d.n_actions as u32,
        mask: d.mask.bits() as u32,
        close: d.close,
        atr: d.atr,
        equity: d.equity,
    };
}

/// Keeps `step` for `nq_engine_last_events`, writes its decision to `out`
/// and says whether there was one.
fn deliver(e: &mut nq_engine, step: Step, out: &mut nq_decision) -> nq_status {
    e.last_step = Some(step);
    match step.decision {
        Some(d) => {
            write_decision(&d, out);
            nq_status::NQ_DECISION
        }
        None => nq_status::NQ_OK,
    }
}

// --------------------------------------------------------------------------
// Library information

/// The library version (the workspace version), NUL-terminated, static.
#[no_mangle]
pub extern "C" fn nq_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The name of a status code ("NQ_ERR_TICK_REJECTED"), static and
/// NUL-terminated; "NQ_UNKNOWN_STATUS" for a value that is no `nq_status`.
#[no_mangle]
pub extern "C" fn nq_status_name(code: i32) -> *const c_char {
    nq_status::ALL
        .iter()
        .find(|s| **s as i32 == code)
        .map_or("NQ_UNKNOWN_STATUS\0", |s| s.c_name())
        .as_ptr()
        .cast()
}

/// The upper-case name of an action code ("BUY"), static and NUL-terminated;
/// NULL for an unknown code.
#[no_mangle]
pub extern "C" fn nq_action_name(action: i32) -> *const c_char {
    let name = u8::try_from(action)
        .ok()
        .and_then(Action::from_code)
        .map(|a| match a {
            Action::Hold => "HOLD\0",
            Action::Buy => "BUY\0",
            Action::Sell => "SELL\0",
            Action::SlToBe => "SL_TO_BE\0",
            Action::TrailTighten => "TRAIL_TIGHTEN\0",
            Action::TrailLoosen => "TRAIL_LOOSEN\0",
        });
    name.map_or(ptr::null(), |n| n.as_ptr().cast())
}

/// The name of a decision kind ("policy", "session_end",
/// "drawdown_breached"), static and NUL-terminated; NULL for an unknown code.
#[no_mangle]
pub extern "C" fn nq_decision_kind_name(kind: i32) -> *const c_char {
    let name = match kind {
        0 => "policy\0",
        1 => "session_end\0",
        2 => "drawdown_breached\0",
        _ => return ptr::null(),
    };
    name.as_ptr().cast()
}

/// The hash of the observation layout this runtime computes for bars of
/// `bar_seconds` (nq-obs-v1). A checkpoint's `obs_layout_hash` metadata must
/// equal it; `nq_engine_layout_hash` reports the loaded checkpoint's.
#[no_mangle]
pub extern "C" fn nq_layout_hash(bar_seconds: u32) -> u64 {
    OBS_LAYOUT_V1.with_bar_seconds(bar_seconds).hash()
}

/// Writes the name of observation entry `index` ("ret_1[t-19]", "rsi[t-0]",
/// "minutes_to_close", ...) into `buf` (NUL-terminated). Phase-1
/// observations are the first 225 entries of the 231 phase-2 ones.
/// `NQ_ERR_INVALID_ARGUMENT` past the end, `NQ_ERR_BUFFER_TOO_SMALL` (with
/// the truncated name written) when `buf_len` is too short.
///
/// # Safety
/// `buf` is NULL or valid for writes of `buf_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn nq_obs_feature_name(
    index: usize,
    buf: *mut c_char,
    buf_len: usize,
) -> nq_status {
    guard(
        || nq_status::NQ_ERR_INTERNAL,
        || {
            if buf.is_null() {
                return nq_status::NQ_ERR_NULL_POINTER;
            }
            if buf_len == 0 {
                return nq_status::NQ_ERR_BUFFER_TOO_SMALL;
            }
            let Some(feature) = OBS_LAYOUT_V1.feature(index) else {
                // SAFETY: buf_len >= 1.
                unsafe { buf.write(0) };
                return nq_status::NQ_ERR_INVALID_ARGUMENT;
            };
            // SAFETY: the caller's contract.
            let out = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), buf_len) };
            let mut w = ByteWriter { buf: out, len: 0 };
            let fits = write!(w, "{feature}").is_ok();
            let end = w.len;
            out[end] = 0;
            if fits {
                nq_status::NQ_OK
            } else {
                nq_status::NQ_ERR_BUFFER_TOO_SMALL
            }
        },
    )
}

/// Like [`MessageWriter`] over a caller's buffer of any length.
struct ByteWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl fmt::Write for ByteWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - 1 - self.len;
        let take = s.len().min(room);
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        if take < s.len() {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

// --------------------------------------------------------------------------
// Options

impl Default for nq_engine_options {
    /// Every checkpoint setting kept, greedy decisions.
    fn default() -> Self {
        nq_engine_options {
            struct_size: size_of::<nq_engine_options>() as u32,
            sampling: nq_sampling::NQ_SAMPLING_GREEDY as i32,
            seed: 0,
            commission_per_side: f64::NAN,
            slippage_ticks: f64::NAN,
            drawdown_limit_usd: f64::NAN,
            session: [0; NQ_SESSION_LEN],
        }
    }
}

impl nq_engine_options {
    /// Sets `session` from text (for Rust callers and tests); false, and
    /// unchanged, when it does not fit with its NUL.
    pub fn set_session(&mut self, text: &str) -> bool {
        if text.len() >= NQ_SESSION_LEN {
            return false;
        }
        self.session = [0; NQ_SESSION_LEN];
        for (dst, &b) in self.session.iter_mut().zip(text.as_bytes()) {
            *dst = b as c_char;
        }
        true
    }
}

/// Fills `*out` with the defaults: `struct_size` set, greedy decisions,
/// seed 0, every simulator setting kept (NaN numbers, empty session).
/// `NQ_ERR_NULL_POINTER` when `out` is NULL.
///
/// # Safety
/// `out` is NULL or valid for writes of an `nq_engine_options`.
#[no_mangle]
pub unsafe extern "C" fn nq_engine_options_default(out: *mut nq_engine_options) -> nq_status {
    if out.is_null() {
        return nq_status::NQ_ERR_NULL_POINTER;
    }
    // SAFETY: the caller's contract; a write, so `*out` may be uninitialised.
    unsafe { out.write(nq_engine_options::default()) };
    nq_status::NQ_OK
}

/// Why an `nq_engine_options` was refused; its text names the field and
/// the value.
#[derive(Debug, Clone, Copy)]
enum OptionsProblem {
    StructSize(u32),
    Sampling(i32),
    Number {
        field: &'static str,
        value: f64,
        rule: &'static str,
    },
    SessionUnterminated,
    Session([u8; NQ_SESSION_LEN], usize),
}

impl fmt::Display for OptionsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionsProblem::StructSize(size) => write!(
                f,
                "options.struct_size = {size}: this library's nq_engine_options is {} bytes; fill it with nq_engine_options_default() and use the header of this library",
                size_of::<nq_engine_options>()
            ),
            OptionsProblem::Sampling(code) => write!(
                f,
                "options.sampling = {code}: not an nq_sampling (0 greedy, 1 sample)"
            ),
            OptionsProblem::Number { field, value, rule } => {
                write!(f, "options.{field} = {value}: {rule}")
            }
            OptionsProblem::SessionUnterminated => write!(
                f,
                "options.session has no terminating NUL within its {NQ_SESSION_LEN} bytes"
            ),
            // The wording of `nq-eval --session`.
            OptionsProblem::Session(bytes, len) => write!(
                f,
                "options.session \"{}\": expected HH:MM-HH:MM, RTH or GLOBEX",
                bytes[..*len].escape_ascii()
            ),
        }
    }
}

/// The caller's options, or the defaults for NULL. Only a `struct_size`
/// this library knows is read further (there is one version so far).
///
/// # Safety
/// `options` is NULL or valid for reads of the `struct_size` it declares.
unsafe fn read_options(
    options: *const nq_engine_options,
) -> Result<nq_engine_options, OptionsProblem> {
    if options.is_null() {
        return Ok(nq_engine_options::default());
    }
    // SAFETY: non-null; the first field is readable whatever the version.
    let size = unsafe { ptr::addr_of!((*options).struct_size).read_unaligned() };
    if size as usize != size_of::<nq_engine_options>() {
        return Err(OptionsProblem::StructSize(size));
    }
    // SAFETY: the caller declared this many readable bytes.
    Ok(unsafe { options.read_unaligned() })
}

/// The checkpoint's own settings with `options` applied, the way
/// `nq-eval`'s flags apply them (tools/src/eval/overrides.rs).
fn config_with(
    policy: &Policy<'_>,
    options: &nq_engine_options,
) -> Result<EngineConfig, OptionsProblem> {
    let mut config = EngineConfig::from_policy(policy);
    config.sampling = match options.sampling {
        0 => Sampling::Greedy,
        1 => Sampling::Sample { seed: options.seed },
        other => return Err(OptionsProblem::Sampling(other)),
    };
    const KEEP_OR_NONNEG: &str = "must be finite and >= 0, or NaN to keep the checkpoint's";
    let number = |field, value: f64, rule| {
        if value.is_nan() {
            Ok(None)
        } else if value.is_finite() && value >= 0.0 {
            Ok(Some(value))
        } else {
            Err(OptionsProblem::Number { field, value, rule })
        }
    };
    // The limits of `nq-eval --commission` / `--slippage-ticks`
    // (tools/src/eval/overrides.rs): more is a typing slip, and far more
    // overflows the P&L.
    const MAX_COMMISSION_USD: f64 = 1_000.0;
    const MAX_SLIPPAGE_TICKS: f64 = 1_000.0;
    let sim = &mut config.sim;
    if let Some(c) = number(
        "commission_per_side",
        options.commission_per_side,
        KEEP_OR_NONNEG,
    )? {
        if c > MAX_COMMISSION_USD {
            return Err(OptionsProblem::Number {
                field: "commission_per_side",
                value: c,
                rule: "must be at most 1000 (dollars per contract per side)",
            });
        }
        sim.commission_per_side = c;
    }
    if let Some(s) = number("slippage_ticks", options.slippage_ticks, KEEP_OR_NONNEG)? {
        // Fills are on the tick grid: the simulator would round a fraction
        // up to the next whole tick, silently.
        let rule = if s.fract() != 0.0 {
            Some("slippage is in whole ticks (fills are on the tick grid); give a whole number")
        } else if s > MAX_SLIPPAGE_TICKS {
            Some("must be at most 1000 ticks")
        } else {
            None
        };
        if let Some(rule) = rule {
            return Err(OptionsProblem::Number {
                field: "slippage_ticks",
                value: s,
                rule,
            });
        }
        sim.slippage_ticks = s;
    }
    if let Some(d) = number(
        "drawdown_limit_usd",
        options.drawdown_limit_usd,
        "must be finite and >= 0 (0 = no limit), or NaN to keep the checkpoint's",
    )? {
        sim.max_drawdown = d;
    }
    let mut bytes = [0u8; NQ_SESSION_LEN];
    for (dst, &c) in bytes.iter_mut().zip(&options.session) {
        *dst = c as u8;
    }
    let len = bytes
        .iter()
        .position(|&b| b == 0)
        .ok_or(OptionsProblem::SessionUnterminated)?;
    if len > 0 {
        sim.session = core::str::from_utf8(&bytes[..len])
            .ok()
            .and_then(SessionHours::parse)
            .ok_or(OptionsProblem::Session(bytes, len))?;
    }
    Ok(config)
}

// --------------------------------------------------------------------------
// Creation and release

/// Bytes of storage an engine needs (about 60 KiB).
#[no_mangle]
pub extern "C" fn nq_engine_size() -> usize {
    size_of::<nq_engine>()
}

/// Alignment the storage of an engine needs.
#[no_mangle]
pub extern "C" fn nq_engine_align() -> usize {
    align_of::<nq_engine>()
}

/// What a creation call answers if the runtime panicked: NULL, with the
/// reason in `err`.
///
/// # Safety
/// `err` is NULL or valid for writes.
unsafe fn creation_panicked(err: *mut nq_error) -> *mut nq_engine {
    // SAFETY: the caller's contract on `err`.
    unsafe {
        report(
            err,
            nq_status::NQ_ERR_INTERNAL,
            format_args!("internal error (panic) while creating the engine"),
        )
    };
    ptr::null_mut()
}

/// Builds an engine in `storage` over the checkpoint in `checkpoint`, with
/// the simulator settings the checkpoint was trained with and greedy
/// decisions: `nq_engine_init_with` with default options. Allocates nothing.
///
/// Returns the engine (at `storage`) or NULL, with the code and message in
/// `err` (which may be NULL; on success its code is `NQ_OK`).
///
/// The checkpoint bytes are used in place: they must stay alive and
/// unchanged until the engine is released. Any alignment works; aligned to
/// 8 bytes (any `malloc` result is) the weights are read in place, otherwise
/// every forward pass decodes them (slower, same results).
///
/// # Safety
/// `storage` is NULL or valid for writes of `storage_len` bytes and not used
/// for anything else while the engine lives; `checkpoint` is NULL or valid
/// for reads of `checkpoint_len` bytes for the engine's whole life; `err` is
/// NULL or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn nq_engine_init(
    storage: *mut c_void,
    storage_len: usize,
    checkpoint: *const u8,
    checkpoint_len: usize,
    err: *mut nq_error,
) -> *mut nq_engine {
    // SAFETY: the caller's contract, which is `nq_engine_init_with`'s.
    unsafe {
        nq_engine_init_with(
            storage,
            storage_len,
            checkpoint,
            checkpoint_len,
            ptr::null(),
            err,
        )
    }
}

/// `nq_engine_init` with `options` replacing checkpoint settings (commission,
/// slippage, drawdown limit, session) and choosing greedy or seeded sampled
/// decisions. `options` NULL, or as `nq_engine_options_default` fills it,
/// gives exactly `nq_engine_init`'s engine. A field out of range is refused
/// with `NQ_ERR_OPTIONS`, the message naming the field and its value.
/// Allocates nothing.
///
/// # Safety
/// As `nq_engine_init`; `options` is NULL or valid for reads of the
/// `struct_size` bytes it declares.
#[no_mangle]
pub unsafe extern "C" fn nq_engine_init_with(
    storage: *mut c_void,
    storage_len: usize,
    checkpoint: *const u8,
    checkpoint_len: usize,
    options: *const nq_engine_options,
    err: *mut nq_error,
) -> *mut nq_engine {
    guard(
        // SAFETY: the caller's contract on `err`.
        || unsafe { creation_panicked(err) },
        || {
            if storage.is_null() {
                // SAFETY: the caller's contract on `err`.
                unsafe {
                    report(
                        err,
                        nq_status::NQ_ERR_NULL_POINTER,
                        format_args!("storage is NULL"),
                    )
                };
                return ptr::null_mut();
            }
            if storage_len < size_of::<nq_engine>() {
                // SAFETY: as above.
                unsafe {
                    report(
                        err,
                        nq_status::NQ_ERR_STORAGE_TOO_SMALL,
                        format_args!(
                            "storage is {storage_len} bytes, an engine needs {} (nq_engine_size())",
                            size_of::<nq_engine>()
                        ),
                    )
                };
                return ptr::null_mut();
            }
            if storage.cast::<u8>().align_offset(align_of::<nq_engine>()) != 0 {
                // SAFETY: as above.
                unsafe {
                    report(
                        err,
                        nq_status::NQ_ERR_STORAGE_MISALIGNED,
                        format_args!(
                            "storage at {storage:p} is not aligned to {} bytes (nq_engine_align())",
                            align_of::<nq_engine>()
                        ),
                    )
                };
                return ptr::null_mut();
            }
            // SAFETY: storage is large enough, aligned and the caller's to use.
            match unsafe {
                init_in_place(
                    storage.cast(),
                    checkpoint,
                    checkpoint_len,
                    options,
                    false,
                    err,
                )
            } {
                nq_status::NQ_OK => storage.cast(),
                _ => ptr::null_mut(),
            }
        },
    )
}

/// Writes a live engine at `at`.
///
/// # Safety
/// `at` is valid for writes of an aligned `nq_engine`; `checkpoint`,
/// `options` and `err` as in [`nq_engine_init_with`].
unsafe fn init_in_place(
    at: *mut nq_engine,
    checkpoint: *const u8,
    checkpoint_len: usize,
    options: *const nq_engine_options,
    boxed: bool,
    err: *mut nq_error,
) -> nq_status {
    if checkpoint.is_null() {
        // SAFETY: the caller's contract on `err`.
        return unsafe {
            report(
                err,
                nq_status::NQ_ERR_NULL_POINTER,
                format_args!("checkpoint is NULL"),
            )
        };
    }
    // SAFETY: the caller keeps these bytes alive and unchanged for the
    // engine's life (the header's contract), which is what `'static` stands for.
    let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(checkpoint, checkpoint_len) };
    // SAFETY: the caller's contract on `options`.
    let options = match unsafe { read_options(options) } {
        Ok(o) => o,
        Err(problem) => {
            // SAFETY: the caller's contract on `err`.
            return unsafe { report(err, nq_status::NQ_ERR_OPTIONS, format_args!("{problem}")) };
        }
    };
    let policy = match Checkpoint::parse(bytes)
        .map_err(PolicyError::from)
        .and_then(|c| Policy::from_checkpoint(&c))
    {
        Ok(p) => p,
        Err(e) => {
            let e = EngineError::Policy(e);
            // SAFETY: the caller's contract on `err`.
            return unsafe { report(err, status_of(&e), format_args!("{e}")) };
        }
    };
    let config = match config_with(&policy, &options) {
        Ok(c) => c,
        Err(problem) => {
            // SAFETY: the caller's contract on `err`.
            return unsafe { report(err, nq_status::NQ_ERR_OPTIONS, format_args!("{problem}")) };
        }
    };
    match Engine::new(policy, config) {
        Ok(engine) => {
            // SAFETY: the caller's contract on `at`.
            unsafe {
                at.write(nq_engine {
                    magic: MAGIC_LIVE,
                    boxed,
                    last_error: nq_error::default(),
                    last_step: None,
                    engine,
                })
            };
            // SAFETY: the caller's contract on `err`.
            unsafe { report(err, nq_status::NQ_OK, format_args!("")) }
        }
        // SAFETY: the caller's contract on `err`.
        Err(e) => unsafe { report(err, status_of(&e), format_args!("{e}")) },
    }
}

/// Releases an engine made by `nq_engine_init`; its storage may then be
/// reused or freed. Any later call with it returns `NQ_ERR_NOT_AN_ENGINE`
/// (as long as the storage is not reused). An engine made by `nq_engine_new`
/// is refused with `NQ_ERR_INVALID_ARGUMENT` (use `nq_engine_free`).
///
/// # Safety
/// `engine` is NULL or points at storage given to `nq_engine_init`.
#[no_mangle]
pub unsafe extern "C" fn nq_engine_deinit(engine: *mut nq_engine) -> nq_status {
    // SAFETY: the caller's contract.
    let e = match unsafe { live_or_poisoned(engine) } {
        Ok(e) => e,
        Err(status) => return status,
    };
    if e.boxed {
        return e.fail(
            nq_status::NQ_ERR_INVALID_ARGUMENT,
            format_args!("engine was made by nq_engine_new: release it with nq_engine_free"),
        );
    }
    e.magic = MAGIC_RELEASED;
    nq_status::NQ_OK
}

/// A live or poisoned engine (either may be released).
///
/// # Safety
/// As [`live`].
unsafe fn live_or_poisoned<'e>(engine: *mut nq_engine) -> Result<&'e mut nq_engine, nq_status> {
    // SAFETY: the caller's contract.
    match unsafe { live(engine) } {
        Ok(e) => Ok(e),
        // SAFETY: poisoned means it was live: the memory is an engine's.
        Err(nq_status::NQ_ERR_INTERNAL) => Ok(unsafe { &mut *engine }),
        Err(status) => Err(status),
    }
}

/// Allocates and builds an engine (convenience over `nq_engine_init`, with
/// the same checkpoint contract). NULL on failure, with the reason in `err`.
/// Release it with `nq_engine_free`.
///
/// # Safety
/// `checkpoint` is NULL or valid for reads of `checkpoint_len` bytes for the
/// engine's whole life; `err` is NULL or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn nq_engine_new(
    checkpoint: *const u8,
    checkpoint_len: usize,
    err: *mut nq_error,
) -> *mut nq_engine {
    // SAFETY: the caller's contract, which is `nq_engine_new_with`'s.
    unsafe { nq_engine_new_with(checkpoint, checkpoint_len, ptr::null(), err) }
}

/// `nq_engine_new` with options, as `nq_engine_init_with`. NULL on failure
/// (`NQ_ERR_OPTIONS` for a bad option), with the reason in `err`.
///
/// # Safety
/// As `nq_engine_new`; `options` as in `nq_engine_init_with`.
#[no_mangle]
pub unsafe extern "C" fn nq_engine_new_with(
    checkpoint: *const u8,
    checkpoint_len: usize,
    options: *const nq_engine_options,
    err: *mut nq_error,
) -> *mut nq_engine {
    guard(
        // SAFETY: the caller's contract on `err`.
        || unsafe { creation_panicked(err) },
        || {
            let mut slot = Box::<nq_engine>::new_uninit();
            // SAFETY: a fresh, aligned allocation of an nq_engine.
            let status = unsafe {
                init_in_place(
                    slot.as_mut_ptr(),
                    checkpoint,
                    checkpoint_len,
                    options,
                    true,
                    err,
                )
            };
            if status != nq_status::NQ_OK {
                return ptr::null_mut();
            }
            // SAFETY: init_in_place wrote the engine.
            Box::into_raw(unsafe { slot.assume_init() })
        },
    )
}

/// Frees an engine made by `nq_engine_new`. NULL is a no-op (`NQ_OK`); an
/// engine made by `nq_engine_init` is refused with `NQ_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `engine` is NULL or a pointer returned by `nq_engine_new` or
/// `nq_engine_init` and not yet released.
#[no_mangle]
pub unsafe extern "C" fn nq_engine_free(engine: *mut nq_engine) -> nq_status {
    if engine.is_null() {
        return nq_status::NQ_OK;
    }
    // SAFETY: the caller's contract.
    let e = match unsafe { live_or_poisoned(engine) } {
        Ok(e) => e,
        Err(status) => return status,
    };
    if !e.boxed {
        return e.fail(
            nq_status::NQ_ERR_INVALID_ARGUMENT,
            format_args!("engine was made by nq_engine_init: release it with nq_engine_deinit"),
        );
    }
    e.magic = MAGIC_RELEASED;
    // SAFETY: boxed engines come from Box::into_raw in nq_engine_new.
    drop(unsafe { Box::from_raw(engine) });
    nq_status::NQ_OK
}

// --------------------------------------------------------------------------
// Feeding

/// One trade print. `NQ_DECISION` when it closed a bar and a decision was
/// written to `out`, `NQ_OK` when not, `NQ_ERR_TICK_REJECTED` for a bad tick
/// (the engine is unchanged; the message says why). Never allocates.
///
/// # Safety
/// `engine` as returned by creation; `tick` NULL or readable; `out` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn nq_engine_on_tick(
    engine: *mut nq_engine,
    tick: *const nq_tick,
    out: *mut nq_decision,
) -> nq_status {
    let body = |e: &mut nq_engine| {
        e.last_step = None;
        // SAFETY: the caller's contract on `tick` and `out`.
        let (Some(tick), Some(out)) = (unsafe { tick.as_ref() }, unsafe { out.as_mut() }) else {
            return e.fail(
                nq_status::NQ_ERR_NULL_POINTER,
                format_args!("nq_engine_on_tick: tick or out is NULL"),
            );
        };
        let side = match tick.side {
            0 => Side::None,
            1 => Side::Buy,
            2 => Side::Sell,
            other => {
                return e.fail(
                    nq_status::NQ_ERR_INVALID_ARGUMENT,
                    format_args!(
                        "tick at {} ns: side {other} is not an nq_side (0 none, 1 buy, 2 sell)",
                        tick.ts_ns
                    ),
                )
            }
        };
        let t = Tick {
            ts_ns: tick.ts_ns,
            price: tick.price,
            size: tick.size,
            side,
        };
        match e.engine.on_tick(&t) {
            Ok(step) => deliver(e, step, out),
            Err(reason) => e.fail(
                nq_status::NQ_ERR_TICK_REJECTED,
                format_args!(
                    "tick at {} ns (price {}, size {}) rejected: {reason}",
                    tick.ts_ns, tick.price, tick.size
                ),
            ),
        }
    };
    // SAFETY: the caller's contract.
    unsafe { with_engine(engine, body) }
}

/// One closed bar, for callers that have bars rather than ticks (a warm-up
/// history, or a bar feed). Same results as `nq_engine_on_tick`;
/// `NQ_ERR_BAR_REJECTED` for an inconsistent bar or one not later than the
/// previous bar.
///
/// # Safety
/// As `nq_engine_on_tick`.
#[no_mangle]
pub unsafe extern "C" fn nq_engine_on_bar(
    engine: *mut nq_engine,
    bar: *const nq_bar,
    out: *mut nq_decision,
) -> nq_status {
    let body = |e: &mut nq_engine| {
        e.last_step = None;
        // SAFETY: the caller's contract on `bar` and `out`.
        let (Some(bar), Some(out)) = (unsafe { bar.as_ref() }, unsafe { out.as_mut() }) else {
            return e.fail(
                nq_status::NQ_ERR_NULL_POINTER,
                format_args!("nq_engine_on_bar: bar or out is NULL"),
            );
        };
        let b = Bar {
            ts_ns: bar.ts_ns,
            open: bar.open,
            high: bar.high,
            low: bar.low,
            close: bar.close,
            volume: bar.volume,
        };
        let previous = e.engine.features().last_bar().ts_ns;
        match e.engine.on_bar(&b) {
            Ok(step) => deliver(e, step, out),
            Err(BarRejected::Inconsistent) => e.fail(
                nq_status::NQ_ERR_BAR_REJECTED,
                format_args!(
                    "bar at {} ns rejected: prices must be finite, positive and low <= open, close <= high, volume finite and >= 0",
                    b.ts_ns
                ),
            ),
            Err(BarRejected::NotAfterPrevious) => e.fail(
                nq_status::NQ_ERR_BAR_REJECTED,
                format_args!(
                    "bar at {} ns rejected: not later than the previous bar at {previous} ns",
                    b.ts_ns
                ),
            ),
        }
    };
    // SAFETY: the caller's contract.
    unsafe { with_engine(engine, body) }
}

/// A clock for a quiet market: closes the open bar if `now_ns` is at or after
/// its end and decides on it (`NQ_DECISION`), otherwise `NQ_OK`.
///
/// Live, call it every minute and at or after the session end: with an
/// RTH-only feed the session's last bar (and its `NQ_KIND_SESSION_END`
/// decision) closes only on a clock, or on the next morning's first print.
/// When no bar closes at the session end (no print in the session's last
/// minute, an early close), the first call at or after the end with a
/// position or an order held gives the `NQ_KIND_SESSION_END` decision, and
/// so does the first print past the end: once per session, whichever comes
/// first. The engine's simulated position then closes on the next print
/// within a bar of the end, or at the last bar's close once a whole bar has
/// passed without one (that trade is in `nq_engine_last_events`, marked
/// `closed_out`). The calendar has no
/// exchange holidays: on early-close days the session still ends at 16:00
/// New York for the engine, so that decision comes at 16:00.
///
/// # Safety
/// As `nq_engine_on_tick`.
#[no_mangle]
pub unsafe extern "C" fn nq_engine_flush(
    engine: *mut nq_engine,
    now_ns: i64,
    out: *mut nq_decision,
) -> nq_status {
    let body = |e: &mut nq_engine| {
        e.last_step = None;
        // SAFETY: the caller's contract on `out`.
        let Some(out) = (unsafe { out.as_mut() }) else {
            return e.fail(
                nq_status::NQ_ERR_NULL_POINTER,
                format_args!("nq_engine_flush: out is NULL"),
            );
        };
        let step = e.engine.flush(now_ns);
        deliver(e, step, out)
    };
    // SAFETY: the caller's contract.
    unsafe { with_engine(engine, body) }
}

/// A fill report or position correction: the execution system's position
/// overrides the simulated one, so the next observation, mask and decision
/// start from it. `NQ_ERR_FILL_REJECTED` leaves the engine unchanged.
///
/// # Safety
/// `engine` as returned by creation; `fill` NULL or readable.
#[no_mangle]
pub unsafe extern "C" fn nq_engine_on_fill(
    engine: *mut nq_engine,
    fill: *const nq_fill,
) -> nq_status {
    let body = |e: &mut nq_engine| {
        // SAFETY: the caller's contract on `fill`.
        let Some(fill) = (unsafe { fill.as_ref() }) else {
            return e.fail(
                nq_status::NQ_ERR_NULL_POINTER,
                format_args!("nq_engine_on_fill: fill is NULL"),
            );
        };
        let Ok(position) = i8::try_from(fill.position) else {
            return e.fail(
                nq_status::NQ_ERR_FILL_REJECTED,
                format_args!(
                    "fill at {} ns rejected: position {} is not -1, 0 or +1 (one contract)",
                    fill.ts_ns, fill.position
                ),
            );
        };
        let report = FillReport {
            ts_ns: fill.ts_ns,
            position,
            entry_price: fill.entry_price,
            stop_price: (fill.has_stop != 0).then_some(fill.stop_price),
            target_price: (fill.has_target != 0).then_some(fill.target_price),
        };
        e.last_step = None;
        match e.engine.on_fill(&report) {
            Ok(step) => {
                e.last_step = Some(step);
                nq_status::NQ_OK
            }
            Err(reason) => e.fail(
                nq_status::NQ_ERR_FILL_REJECTED,
                format_args!("fill at {} ns rejected: {reason}", fill.ts_ns),
            ),
        }
    };
    // SAFETY: the caller's contract.
    unsafe { with_engine(engine, body) }
}

// --------------------------------------------------------------------------
// Simulated account: trade events and the end of the data

const fn exit_reason_code(reason: ExitReason) -> nq_exit_reason {
    match reason {
        ExitReason::Signal => nq_exit_reason::NQ_EXIT_SIGNAL,
        ExitReason::Stop => nq_exit_reason::NQ_EXIT_STOP,
        ExitReason::Target => nq_exit_reason::NQ_EXIT_TARGET,
        ExitReason::SessionEnd => nq_exit_reason::NQ_EXIT_SESSION_END,
        ExitReason::Drawdown => nq_exit_reason::NQ_EXIT_DRAWDOWN,
        ExitReason::EndOfData => nq_exit_reason::NQ_EXIT_END_OF_DATA,
        ExitReason::External => nq_exit_reason::NQ_EXIT_EXTERNAL,
    }
}

fn trade_of(t: &TradeRecord) -> nq_trade {
    nq_trade {
        side: t.side as i32,
        contracts: t.contracts,
        entry_ts_ns: t.entry_ts_ns,
        exit_ts_ns: t.exit_ts_ns,
        entry_price: t.entry_price,
        exit_price: t.exit_price,
        gross_pnl: t.gross_pnl,
        commission: t.commission,
        net_pnl: t.net_pnl,
        exit_reason: exit_reason_code(t.exit_reason) as i32,
        bars_held: t.bars_held,
        mae: t.mae,
        mfe: t.mfe,
    }
}

fn events_of(step: &Step) -> nq_events {
    let entry = step.entry.map(|f| nq_entry_fill {
        ts_ns: f.ts_ns,
        side: f.side as i32,
        contracts: f.contracts,
        price: f.price,
        stop_price: f.stop_price,
        target_price: f.target_price,
        commission: f.commission,
    });
    let mut exits = step.exits();
    let (first, second) = (exits.next(), exits.next());
    nq_events {
        has_entry: entry.is_some() as u8,
        has_trade: first.is_some() as u8,
        breached: step.breached as u8,
        closed_out: step.closed_out as u8,
        has_second_trade: second.is_some() as u8,
        entry: entry.unwrap_or_default(),
        trade: first.map(trade_of).unwrap_or_default(),
        second_trade: second.map(trade_of).unwrap_or_default(),
    }
}

/// The name of an exit reason code as `trades.parquet` writes it ("STOP",
/// "END_OF_DATA", ...), static and NUL-terminated; NULL for an unknown code.
#[no_mangle]
pub extern "C" fn nq_exit_reason_name(reason: i32) -> *const c_char {
    let name = match reason {
        0 => "SIGNAL\0",
        1 => "STOP\0",
        2 => "TARGET\0",
        3 => "SESSION_END\0",
        4 => "DRAWDOWN\0",
        5 => "END_OF_DATA\0",
        6 => "EXTERNAL\0",
        _ => return ptr::null(),
    };
    name.as_ptr().cast()
}

/// What the last `nq_engine_on_tick`, `_on_bar`, `_flush`, `_on_fill` or
/// `_end_of_data` call did to the engine's simulated account (the shadow of
/// the real one, as in `nq-eval`'s `trades.parquet`): the entry that filled,
/// the trades that closed, and a drawdown breach. A fill report that no
/// longer has the simulated position closes it as `NQ_EXIT_EXTERNAL`. All
/// flags are zero before the first such call and after a refused one.
/// Never allocates.
///
/// # Safety
/// `engine` as returned by creation; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nq_engine_last_events(
    engine: *mut nq_engine,
    out: *mut nq_events,
) -> nq_status {
    let body = |e: &mut nq_engine| {
        // SAFETY: the caller's contract on `out`.
        let Some(out) = (unsafe { out.as_mut() }) else {
            return e.fail(
                nq_status::NQ_ERR_NULL_POINTER,
                format_args!("nq_engine_last_events: out is NULL"),
            );
        };
        *out = e.last_step.as_ref().map(events_of).unwrap_or_default();
        nq_status::NQ_OK
    };
    // SAFETY: the caller's contract.
    unsafe { with_engine(engine, body) }
}

/// The data ran out (the end of a backtest or replay): closes the simulated
/// position at the last price seen, with slippage and commission, as
/// `NQ_EXIT_END_OF_DATA` at `ts_ns`, and drops a pending order.
/// `NQ_TRADE_CLOSED` with the trade in `*out` (and in
/// `nq_engine_last_events`), or `NQ_OK` with `*out` zeroed when flat. The
/// engine stays usable. Live, the position is the execution system's: this
/// only closes the engine's shadow of it. Never allocates.
///
/// # Safety
/// `engine` as returned by creation; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nq_engine_end_of_data(
    engine: *mut nq_engine,
    ts_ns: i64,
    out: *mut nq_trade,
) -> nq_status {
    let body = |e: &mut nq_engine| {
        e.last_step = None;
        // SAFETY: the caller's contract on `out`.
        let Some(out) = (unsafe { out.as_mut() }) else {
            return e.fail(
                nq_status::NQ_ERR_NULL_POINTER,
                format_args!("nq_engine_end_of_data: out is NULL"),
            );
        };
        let step = e.engine.end_of_data(ts_ns);
        e.last_step = Some(step);
        match step.exits().next() {
            Some(t) => {
                *out = trade_of(t);
                nq_status::NQ_TRADE_CLOSED
            }
            None => {
                *out = nq_trade::default();
                nq_status::NQ_OK
            }
        }
    };
    // SAFETY: the caller's contract.
    unsafe { with_engine(engine, body) }
}

// --------------------------------------------------------------------------
// Idle time

/// Optional idle-time work: computes ahead the part of the next decision
/// that is already known (the policy's first layer over the 19 older bars of
/// the next observation, 208 of its 231 inputs), so the tick that closes the
/// next bar decides sooner. Call it after acting on a decision, while
/// waiting for the next tick; it costs about 40% of a decision's time,
/// spent here instead of on the bar-closing tick. Decisions are
/// bit-identical with or without it: the prepared sums are used only if the
/// next observation really begins with the values they were computed from
/// (otherwise the decision computes everything itself, as without it), and
/// `nq_engine_prepared_decisions` counts the decisions that used them. It
/// does nothing when the checkpoint buffer is not 4-byte aligned (the
/// weights are then not read in place). Never allocates; `NQ_OK` on a live
/// engine.
///
/// # Safety
/// `engine` as returned by creation.
#[no_mangle]
pub unsafe extern "C" fn nq_engine_prepare(engine: *mut nq_engine) -> nq_status {
    let body = |e: &mut nq_engine| {
        e.engine.prepare_next_decision();
        nq_status::NQ_OK
    };
    // SAFETY: the caller's contract.
    unsafe { with_engine(engine, body) }
}

// --------------------------------------------------------------------------
// Inspection

/// The observation of the last policy decision (225 floats for phase 1, 231
/// for phase 2; all zero before the first): `*data` points inside the
/// engine and stays valid until the next feeding call. Compare it, entry by
/// entry (`nq_obs_feature_name`), with what the trainer saw.
///
/// # Safety
/// `engine` as returned by creation; `data` and `len` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nq_engine_observation(
    engine: *mut nq_engine,
    data: *mut *const f32,
    len: *mut usize,
) -> nq_status {
    let body = |e: &mut nq_engine| {
        if data.is_null() || len.is_null() {
            return e.fail(
                nq_status::NQ_ERR_NULL_POINTER,
                format_args!("nq_engine_observation: data or len is NULL"),
            );
        }
        let obs = e.engine.observation();
        // SAFETY: checked non-null; the caller's contract.
        unsafe {
            data.write(obs.as_ptr());
            len.write(obs.len());
        }
        nq_status::NQ_OK
    };
    // SAFETY: the caller's contract.
    unsafe { with_engine(engine, body) }
}

/// The loaded checkpoint's `obs_layout_hash` (equal to
/// `nq_layout_hash(bar_seconds)`, or creation would have failed).
///
/// # Safety
/// `engine` as returned by creation; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nq_engine_layout_hash(engine: *mut nq_engine, out: *mut u64) -> nq_status {
    // SAFETY: the caller's contract.
    unsafe {
        read_u64(engine, out, "nq_engine_layout_hash", |e| {
            e.engine.policy().metadata().obs_layout_hash
        })
    }
}

/// Policy decisions made so far (session-end and drawdown decisions are not
/// counted).
///
/// # Safety
/// `engine` as returned by creation; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nq_engine_decision_count(
    engine: *mut nq_engine,
    out: *mut u64,
) -> nq_status {
    // SAFETY: the caller's contract.
    unsafe {
        read_u64(engine, out, "nq_engine_decision_count", |e| {
            e.engine.decision_count()
        })
    }
}

/// Policy decisions that started from the sums `nq_engine_prepare` computed
/// (at most `nq_engine_decision_count`); for monitoring that the idle-time
/// work is being used.
///
/// # Safety
/// `engine` as returned by creation; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nq_engine_prepared_decisions(
    engine: *mut nq_engine,
    out: *mut u64,
) -> nq_status {
    // SAFETY: the caller's contract.
    unsafe {
        read_u64(engine, out, "nq_engine_prepared_decisions", |e| {
            e.engine.prepared_decisions()
        })
    }
}

/// Copies the engine's most recent error (code and message) into `out`;
/// code `NQ_OK` and an empty message if no call has failed. Successful calls
/// do not clear it. Works on a poisoned engine too.
///
/// # Safety
/// `engine` as returned by creation; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nq_engine_last_error(
    engine: *mut nq_engine,
    out: *mut nq_error,
) -> nq_status {
    // SAFETY: the caller's contract.
    let e = match unsafe { live_or_poisoned(engine) } {
        Ok(e) => e,
        Err(status) => return status,
    };
    // SAFETY: the caller's contract on `out`.
    match unsafe { out.as_mut() } {
        Some(out) => {
            *out = e.last_error;
            nq_status::NQ_OK
        }
        None => nq_status::NQ_ERR_NULL_POINTER,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_the_guard_becomes_the_fallback() {
        let status = guard(
            || nq_status::NQ_ERR_INTERNAL,
            || -> nq_status { panic!("a runtime bug") },
        );
        assert_eq!(status, nq_status::NQ_ERR_INTERNAL);
    }

    #[test]
    fn messages_are_truncated_on_a_char_boundary() {
        let mut e = nq_error::default();
        let long = "é".repeat(NQ_ERROR_MESSAGE_LEN);
        e.set(nq_status::NQ_ERR_INTERNAL, format_args!("{long}"));
        let msg = e.message_str();
        assert!(msg.len() < NQ_ERROR_MESSAGE_LEN);
        assert_eq!(msg.len() % 2, 0, "whole two-byte characters only");
        assert!(msg.chars().all(|c| c == 'é'));
    }

    #[test]
    fn exit_reason_codes_and_names_are_the_runtimes() {
        for (i, reason) in ExitReason::ALL.into_iter().enumerate() {
            let code = exit_reason_code(reason) as i32;
            assert_eq!(code, i as i32, "codes follow ExitReason::ALL");
            // SAFETY: static NUL-terminated names.
            let name = unsafe { std::ffi::CStr::from_ptr(nq_exit_reason_name(code)) };
            assert_eq!(name.to_str().unwrap(), reason.name());
        }
        assert!(nq_exit_reason_name(7).is_null() && nq_exit_reason_name(-1).is_null());
    }

    #[test]
    fn every_status_has_its_own_name() {
        for s in nq_status::ALL {
            let name = s.c_name();
            assert!(name.ends_with('\0'));
            assert_eq!(format!("{s:?}\0"), name);
        }
    }
}
