//! A session's hot path allocates nothing per line: a counting global
//! allocator watches `Signal::serve` over thousands of CSV and JSON ticks,
//! clock lines, fills, late and unreadable lines, with hundreds of decision
//! lines written (each policy decision followed by the idle-time
//! `prepare_next_decision`), and sees only the one line buffer `serve`
//! starts with.

use std::io::Write;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::allocations_during;
use nq_tools::checkpoint_file::CheckpointFile;
use nq_tools::eval::SimOverrides;
use nq_tools::signal::{Options, Signal};

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

const P1: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../runtime/fixtures/policy/policy_tanh_p1.safetensors"
);

/// Counts output lines by kind without keeping them.
#[derive(Default)]
struct Tally {
    decisions: u64,
    policy: u64,
    others: u64,
}

impl Write for Tally {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.starts_with(b"{\"type\":\"decision\"") {
            self.decisions += 1;
            let policy: &[u8] = b"\"kind\":\"policy\"";
            if buf.windows(policy.len()).any(|w| w == policy) {
                self.policy += 1;
            }
        } else {
            self.others += 1;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn serving_lines_allocates_nothing_per_line() {
    // Monday 2024-03-18 18:00 New York: a Globex session, 4 ticks a minute.
    let start = 1_710_799_200_000_000_000i64;
    let mut input = String::new();
    let mut price = 18_000.0f64;
    let mut state = 9u64;
    for minute in 0..1_000i64 {
        for k in 0..4i64 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            price += [-0.25, 0.0, 0.0, 0.25][(state >> 62) as usize];
            let ts = start + minute * 60_000_000_000 + k * 15_000_000_000;
            if k == 2 {
                input.push_str(&format!(
                    "{{\"ts_utc_ns\":{ts},\"price\":{price},\"size\":2,\"side\":\"A\"}}\n"
                ));
            } else {
                input.push_str(&format!("{ts},{price},1,B\n"));
            }
        }
        match minute % 50 {
            7 => input.push_str(&format!("{},{price},1,B\n", start)),
            8 => input.push_str("not a tick\n"),
            9 => input.push_str(&format!(
                "fill,{},1,{price}\n",
                start + minute * 60_000_000_000 + 50_000_000_000
            )),
            10 => input.push_str(&format!(
                "fill,{},0\n",
                start + minute * 60_000_000_000 + 50_000_000_000
            )),
            11 => input.push_str("fill,1,5,1\n"),
            12 => input.push_str(&format!(
                "clock,{}\n",
                start + (minute + 1) * 60_000_000_000
            )),
            _ => {}
        }
    }
    let ckpt = CheckpointFile::read(P1).unwrap();
    let overrides = SimOverrides {
        session: Some("GLOBEX".into()),
        ..SimOverrides::default()
    };
    let engine = ckpt
        .engine(Some(overrides.engine_config(&ckpt).unwrap()))
        .unwrap();
    let mut signal = Signal::new(engine, Options::default());
    let mut out = Tally::default();

    let (stats, allocations) = allocations_during(|| signal.serve(input.as_bytes(), &mut out));
    let stats = stats.unwrap();

    assert!(out.decisions > 800, "{} decisions", out.decisions);
    assert_eq!(out.decisions, stats.decisions);
    assert!(
        stats.rejected >= 40 && stats.fills_rejected >= 20,
        "{stats:?}"
    );
    assert!(out.others >= 100, "{} other lines", out.others);
    // The idle-time preparation after each policy decision ran in the
    // counted region (the drawdown limit ends the policy's turn late on).
    assert!(
        out.policy > 700 && stats.prepared * 10 > out.policy * 9,
        "{} of {} policy decisions prepared ahead",
        stats.prepared,
        out.policy
    );
    assert!(allocations <= 1, "{allocations} allocations");
}
