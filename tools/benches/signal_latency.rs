//! Decision latency of `nq-signal`, stdin to stdout: the release binary is
//! spawned (pinned to one core with `taskset` when there is one), warmed up
//! past the 132-bar feature warm-up, then for each bar close the
//! bar-closing tick line is written and the time until its decision line is
//! read back is recorded. Prints p50, p99, mean and max over the decisions.
//!
//! Run: `cargo bench -p nq-tools --bench signal_latency`
//! (`NQ_SIGNAL_BENCH_DECISIONS` sets how many timed decisions, default 3000;
//! `NQ_SIGNAL_BENCH_JSON=1` sends JSON tick lines instead of CSV;
//! `NQ_SIGNAL_BENCH_CHECKPOINT=path` times another checkpoint than the small
//! phase-1 fixture, e.g. a trainer-sized 256x256 one;
//! `NQ_SIGNAL_BENCH_BIN=path` times another `nq-signal` binary, to compare
//! two builds in the same window).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const NQ_SIGNAL: &str = env!("CARGO_BIN_EXE_nq-signal");
const CHECKPOINT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../runtime/fixtures/policy/policy_tanh_p1.safetensors"
);
/// Monday 2024-03-18 18:00 New York (22:00 UTC): a Globex session opens.
const START_NS: i64 = 1_710_799_200_000_000_000;
const MINUTE_NS: i64 = 60_000_000_000;
const WARMUP_BARS: i64 = 200;
/// Ticks inside each minute besides the one that closes the previous bar.
const TICKS_PER_BAR: i64 = 5;

/// A deterministic random walk on the 0.25 grid.
struct Walk {
    state: u64,
    price_ticks: i64,
}

impl Walk {
    fn next(&mut self) -> f64 {
        self.state = self
            .state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let step = ((self.state >> 33) % 5) as i64 - 2;
        self.price_ticks = (self.price_ticks + step).max(4);
        self.price_ticks as f64 * 0.25
    }
}

fn tick_line(ts_ns: i64, price: f64, k: i64, json: bool) -> String {
    let side = if k % 2 == 0 { "B" } else { "A" };
    let size = 1 + k % 4;
    if json {
        format!("{{\"ts_utc_ns\":{ts_ns},\"price\":{price},\"size\":{size},\"side\":\"{side}\"}}\n")
    } else {
        format!("{ts_ns},{price},{size},{side}\n")
    }
}

fn taskset() -> bool {
    Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let k = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[k]
}

fn main() {
    let wanted: usize = std::env::var("NQ_SIGNAL_BENCH_DECISIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let json = std::env::var_os("NQ_SIGNAL_BENCH_JSON").is_some_and(|v| v == "1");
    let binary = std::env::var("NQ_SIGNAL_BENCH_BIN").unwrap_or_else(|_| NQ_SIGNAL.into());
    let checkpoint =
        std::env::var("NQ_SIGNAL_BENCH_CHECKPOINT").unwrap_or_else(|_| CHECKPOINT.into());
    let pinned = taskset();
    let mut cmd = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "0", binary.as_str()]);
        c
    } else {
        Command::new(&binary)
    };
    let mut child = cmd
        // No drawdown limit: after a breach decisions skip the policy, which
        // would time less than the real work.
        .args([
            checkpoint.as_str(),
            "--session",
            "GLOBEX",
            "--drawdown-limit",
            "0",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("nq-signal starts");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (send, lines) = mpsc::channel::<(Instant, String)>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if send.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });

    let mut walk = Walk {
        state: 7,
        price_ticks: 18_000 * 4,
    };
    let mut latencies = Vec::with_capacity(wanted);
    let mut quiet_bars = 0u64;
    let mut policy = 0usize;
    let mut minute = 0i64;
    while latencies.len() < wanted {
        let bar_start = START_NS + minute * MINUTE_NS;
        // The first tick of this minute closes the previous bar.
        let closing = tick_line(bar_start, walk.next(), 0, json);
        let sent = Instant::now();
        stdin.write_all(closing.as_bytes()).unwrap();
        stdin.flush().unwrap();
        if minute > WARMUP_BARS {
            // Bars outside the session (the daily break) decide nothing; a
            // decision for an earlier bar that came late is not this one's.
            let this_bar = format!("\"ts_utc_ns\":{bar_start},");
            loop {
                match lines.recv_timeout(Duration::from_millis(200)) {
                    Ok((at, line)) => {
                        // The simulated account's fills and exits follow
                        // their decision lines; only decisions are timed.
                        if line.starts_with("{\"type\":\"sim_") {
                            continue;
                        }
                        assert!(line.starts_with("{\"type\":\"decision\""), "{line}");
                        if line.contains(&this_bar) {
                            policy += usize::from(line.contains("\"kind\":\"policy\""));
                            latencies.push(at - sent);
                            break;
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        quiet_bars += 1;
                        break;
                    }
                    Err(e) => panic!("nq-signal stopped: {e}"),
                }
            }
        } else {
            while lines.try_recv().is_ok() {}
        }
        let mut rest = String::new();
        for k in 1..=TICKS_PER_BAR {
            let ts = bar_start + k * MINUTE_NS / (TICKS_PER_BAR + 1);
            rest.push_str(&tick_line(ts, walk.next(), k, json));
        }
        stdin.write_all(rest.as_bytes()).unwrap();
        minute += 1;
    }
    drop(stdin);
    let status = child.wait().unwrap();
    reader.join().unwrap();
    assert!(status.success(), "{status:?}");

    let mean = latencies.iter().sum::<Duration>() / latencies.len() as u32;
    latencies.sort();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "nq-signal decision latency, stdin {} tick line to stdout decision line \
         ({} decisions, {policy} by the policy, {} bars without a decision, {})",
        if json { "JSON" } else { "CSV" },
        latencies.len(),
        quiet_bars,
        if pinned {
            "nq-signal pinned to core 0 by taskset"
        } else {
            "not pinned: no taskset"
        }
    );
    println!(
        "  p50 {:.1} us   p99 {:.1} us   mean {:.1} us   min {:.1} us   max {:.1} us",
        percentile(&latencies, 0.50).as_secs_f64() * 1e6,
        percentile(&latencies, 0.99).as_secs_f64() * 1e6,
        mean.as_secs_f64() * 1e6,
        latencies[0].as_secs_f64() * 1e6,
        latencies[latencies.len() - 1].as_secs_f64() * 1e6,
    );
    println!("  binary {binary}, checkpoint {checkpoint}");
    println!(
        "  machine: {cpu}, {} CPUs, load average {}",
        num_cpus(),
        load.trim()
    );
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
