//! Shared test fixtures: synthetic bars with a planted, learnable signal, and
//! a small, fast training configuration.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nq_formats::Bar;
use nq_trainer::env::MarketData;
use nq_trainer::rng::Rng;
use nq_trainer::TrainConfig;

/// 2024-01-08 13:00 UTC (08:00 New York, EST): a Monday.
const START_NS: i64 = 1_704_718_800_000_000_000;
const DAY_NS: i64 = 86_400_000_000_000;
const MIN_NS: i64 = 60_000_000_000;

/// `days` days of 1-minute bars from 08:00 to 16:00 New York (480 a day), a
/// noisy walk with a planted signal: now and then an impulse bar (a 6-point
/// body) is followed by six bars drifting 2 points each in its direction.
/// The impulse is visible in the last bar's features, so a policy can learn
/// to enter after it with the drift, and reach the ATR target.
pub fn planted_signal_bars(days: usize, seed: u64) -> Vec<Bar> {
    let mut rng = Rng::stream(seed, 4242);
    let mut bars = Vec::new();
    let mut price = 16_000.0f64;
    let tick = 0.25;
    let snap = |p: f64| (p / tick).round() * tick;
    for day in 0..days {
        let mut drift_left = 0;
        let mut drift = 0.0;
        for m in 0..480 {
            let ts = START_NS + day as i64 * DAY_NS + m * MIN_NS;
            let open = snap(price);
            let body = if drift_left > 0 {
                drift_left -= 1;
                drift + (rng.uniform() - 0.5) * 1.0
            } else if rng.uniform() < 0.08 {
                drift = if rng.uniform() < 0.5 { 2.0 } else { -2.0 };
                drift_left = 6;
                drift * 3.0
            } else {
                (rng.uniform() - 0.5) * 3.0
            };
            let close = snap(open + body);
            let high = snap(open.max(close) + rng.uniform() * 1.0);
            let low = snap(open.min(close) - rng.uniform() * 1.0);
            bars.push(Bar {
                ts_ns: ts,
                open,
                high,
                low,
                close,
                volume: 100.0 + (rng.uniform() * 50.0).round(),
            });
            price = close;
        }
    }
    bars
}

pub fn market(days: usize, seed: u64) -> MarketData {
    MarketData::from_bars(
        planted_signal_bars(days, seed),
        &nq_formats::SimConfig::default(),
    )
    .expect("synthetic bars are valid")
}

/// A config that trains in seconds.
pub fn tiny_config(seed: u64) -> TrainConfig {
    let mut cfg = TrainConfig {
        seed,
        num_envs: 16,
        num_steps: 64,
        updates: 6,
        hidden: vec![32, 32],
        env_threads: 1,
        checkpoint_every: 2,
        monitor_every: 2,
        holdout_sessions: 0,
        ..TrainConfig::default()
    };
    cfg.curriculum.p1_bonus_decay_steps = 2_000;
    cfg
}

pub fn shared_train(days: usize, seed: u64) -> Arc<MarketData> {
    Arc::new(market(days, seed))
}

pub fn real_bars_csv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/real/nq_firstrate_2023_11/nq_1min_bars_utc.csv")
}

/// The real NQ 1-minute bars (`ts_utc_ns,open,high,low,close,volume`), first `limit` rows.
pub fn real_bars(limit: usize) -> Vec<Bar> {
    let text = std::fs::read_to_string(real_bars_csv()).expect("real data beside the repository");
    text.lines()
        .skip(1)
        .take(limit)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Bar {
                ts_ns: f[0].parse().unwrap(),
                open: f[1].parse().unwrap(),
                high: f[2].parse().unwrap(),
                low: f[3].parse().unwrap(),
                close: f[4].parse().unwrap(),
                volume: f[5].parse().unwrap(),
            }
        })
        .collect()
}

/// Inputs for a run of the `nq-train` binary: `config.json` (the tiny config
/// with `updates` updates) and `bars.parquet` (`days` days of planted-signal
/// bars), in `dir`. Returns (config path, data path).
pub fn binary_run_inputs(dir: &Path, updates: u64, days: usize) -> (PathBuf, PathBuf) {
    let mut cfg = tiny_config(1);
    cfg.updates = updates;
    let config = dir.join("config.json");
    std::fs::write(&config, serde_json::to_string(&cfg).unwrap()).unwrap();
    let data = dir.join("bars.parquet");
    write_bars(&data, &planted_signal_bars(days, 1));
    (config, data)
}

/// Writes bars as a Parquet file through the nq-tools writer.
pub fn write_bars(path: &Path, bars: &[Bar]) {
    let mut w = nq_tools::market_data::BarWriter::create(path).unwrap();
    w.write(bars).unwrap();
    w.finish().unwrap();
}
