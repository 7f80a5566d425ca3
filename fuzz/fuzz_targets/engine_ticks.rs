//! Arbitrary market input through the engine: ticks with NaN, infinite,
//! negative or huge prices and sizes, time going backwards or jumping by
//! years, clock flushes, bars, fill reports and idle-time preparation of the
//! next decision in any order. The engine may refuse input; it must never
//! panic, and every decision it makes must respect its own mask.
//!
//! Each input drives an engine already warmed up on 140 quiet bars (so
//! decisions start at once), over a session covering the whole day.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nq_formats::{Bar, SessionHours, Side, Tick};
use nq_runtime::engine::{Engine, EngineConfig, FillReport};
use nq_runtime::policy::{Checkpoint, Policy};

#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

static CHECKPOINT: &Aligned<[u8]> =
    &Aligned(*include_bytes!("../../runtime/fixtures/policy/policy_relu_p2.safetensors"));

const START: i64 = 1_704_672_000_000_000_000; // 2024-01-08 00:00 UTC
const MINUTE: i64 = 60_000_000_000;

fn warmed_engine() -> Engine<'static> {
    let checkpoint = Checkpoint::parse(&CHECKPOINT.0).expect("fixture parses");
    let policy = Policy::from_checkpoint(&checkpoint).expect("fixture is a policy");
    let mut config = EngineConfig::from_policy(&policy);
    config.sim.session = SessionHours::parse("00:00-23:59").expect("valid hours");
    let mut engine = Engine::new(policy, config).expect("engine");
    for i in 0..140 {
        let price = 17_000.0 + (i % 7) as f64;
        let _ = engine.on_tick(&Tick { ts_ns: START + i * MINUTE, price, size: 1.0, side: Side::Buy });
    }
    engine
}

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn i64(&mut self) -> Option<i64> {
        self.take::<8>().map(i64::from_le_bytes)
    }
    /// Mostly plausible prices, sometimes any bit pattern at all.
    fn price(&mut self, last: f64) -> Option<f64> {
        Some(match self.u8()? {
            0..=199 => last + (self.u8()? as i8) as f64 * 0.25,
            200..=229 => f64::from_bits(self.i64()? as u64),
            230..=239 => f64::NAN,
            240..=247 => -last,
            _ => last * 1e6,
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let mut engine = warmed_engine();
    let mut input = Input(data);
    let mut ts = START + 140 * MINUTE;
    let mut price = 17_000.0f64;
    while let Some(op) = input.u8() {
        let decision = match op % 8 {
            0..=3 => {
                let Some(step) = input.u8() else { break };
                ts = ts.wrapping_add(step as i64 * 1_000_000_000);
                let Some(p) = input.price(price) else { break };
                if p.is_finite() && p > 0.0 {
                    price = p;
                }
                let size = match input.u8() {
                    Some(0) => f64::NAN,
                    Some(1) => -1.0,
                    Some(s) => s as f64,
                    None => break,
                };
                engine.on_tick(&Tick { ts_ns: ts, price: p, size, side: Side::Sell }).ok().flatten()
            }
            4 => {
                let Some(jump) = input.i64() else { break };
                ts = ts.wrapping_add(jump);
                engine.on_tick(&Tick { ts_ns: ts, price, size: 1.0, side: Side::None }).ok().flatten()
            }
            5 => engine.flush(ts.saturating_add(MINUTE)),
            6 => {
                let Some(p) = input.price(price) else { break };
                let bar = Bar { ts_ns: ts, open: price, high: p.max(price), low: p.min(price), close: p, volume: 3.0 };
                ts = ts.saturating_add(MINUTE);
                engine.on_bar(&bar)
            }
            _ => {
                let Some(side) = input.u8() else { break };
                let Some(entry) = input.price(price) else { break };
                let _ = engine.on_fill(&FillReport {
                    ts_ns: ts,
                    position: side as i8 % 3 - 1,
                    entry_price: entry,
                    stop_price: None,
                    target_price: None,
                });
                None
            }
        };
        if let Some(d) = decision {
            assert!(d.mask.allows(d.action), "{d:?}");
            assert!(d.probs().iter().all(|p| p.is_finite()), "{d:?}");
        }
        // The idle-time preparation, at whatever point the input says.
        if op & 0x80 != 0 {
            engine.prepare_next_decision();
        }
    }
});
