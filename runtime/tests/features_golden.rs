//! Golden values: the `nq-obs-v1` rows, ATR and session progress of the first
//! 1,000 bars of `nq_firstrate_2023_11` (RTH sessions, NQ tick 0.25). That is
//! 132 warm-up bars, then 869 ready observations from the Sunday-evening
//! Globex open through the first RTH session (VWAP reset at 09:30 ET, bar 929).
//!
//! Any change to a formula, period, seed or warm-up shows up here. If the
//! change is intended, `nq-obs-v1` no longer describes the numbers: register a
//! new layout name in nq-formats rather than regenerating. To regenerate after
//! a deliberate, versioned change:
//! `cargo test -p nq-runtime --test features_golden -- --ignored regenerate`.

mod real_data;

use nq_formats::obs::MARKET_DIM;
use nq_formats::{Bar, SessionHours};
use nq_runtime::features::{
    compute_series, market_window, BarInfo, FeatureConfig, FeatureEngine, BAR_FEATURE_COUNT,
};

const BARS: usize = 1000;
const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/golden_features/nq_firstrate_2023_11_rth_first1000.csv"
);
const HEADER: &str = "ts_ns,ready,atr,elapsed,remaining,ret_atr,range_atr,body_atr,upper_wick,lower_wick,log_volume_rel,ema_fast_dist_atr,ema_slow_dist_atr,vwap_dist_atr,rsi,log_atr_ratio";

fn bars() -> Vec<Bar> {
    real_data::nq_1min_bars().into_iter().take(BARS).collect()
}

fn computed() -> (Vec<f32>, Vec<BarInfo>) {
    let bars = bars();
    let config = FeatureConfig::nq_obs_v1(SessionHours::RTH, 0.25);
    let mut rows = vec![0f32; bars.len() * BAR_FEATURE_COUNT];
    let mut info = vec![BarInfo::default(); bars.len()];
    compute_series(&config, &bars, &mut rows, &mut info).unwrap();
    (rows, info)
}

/// Floats are written with Rust's shortest round-trip formatting, so parsing
/// them back gives the exact bits.
fn render(rows: &[f32], info: &[BarInfo]) -> String {
    let mut out = String::from(HEADER);
    out.push('\n');
    for (row, i) in rows.chunks_exact(BAR_FEATURE_COUNT).zip(info) {
        out += &format!(
            "{},{},{:?},{:?},{:?}",
            i.ts_ns, i.ready as u8, i.atr, i.progress.elapsed, i.progress.remaining
        );
        for x in row {
            out += &format!(",{x:?}");
        }
        out.push('\n');
    }
    out
}

#[test]
fn first_thousand_bars_match_the_golden_file() {
    let golden = std::fs::read_to_string(GOLDEN).expect("golden file missing: see the module docs");
    let (rows, info) = computed();
    let mut lines = golden.lines();
    assert_eq!(lines.next(), Some(HEADER));
    let mut ready = 0;
    for (i, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 16, "golden line {}", i + 2);
        let at = |what: &str| format!("bar {i} {what}");
        assert_eq!(info[i].ts_ns, f[0].parse::<i64>().unwrap(), "{}", at("ts"));
        assert_eq!(
            info[i].ready as u8,
            f[1].parse::<u8>().unwrap(),
            "{}",
            at("ready")
        );
        for (k, (got, want)) in [
            info[i].atr,
            info[i].progress.elapsed,
            info[i].progress.remaining,
        ]
        .iter()
        .zip(&f[2..5])
        .enumerate()
        {
            assert_eq!(
                got.to_bits(),
                want.parse::<f64>().unwrap().to_bits(),
                "{} {k}",
                at("atr/progress")
            );
        }
        for (k, (got, want)) in rows[i * BAR_FEATURE_COUNT..(i + 1) * BAR_FEATURE_COUNT]
            .iter()
            .zip(&f[5..])
            .enumerate()
        {
            assert_eq!(
                got.to_bits(),
                want.parse::<f32>().unwrap().to_bits(),
                "{}: {got} vs {want}",
                at(HEADER.split(',').nth(5 + k).unwrap())
            );
        }
        ready += info[i].ready as usize;
    }
    assert_eq!(info.len(), BARS);
    assert_eq!(ready, BARS - 131);
    // The live engine's windows are the golden rows too.
    let mut e = FeatureEngine::new(FeatureConfig::nq_obs_v1(SessionHours::RTH, 0.25)).unwrap();
    let mut market = [0f32; MARKET_DIM];
    for (i, b) in bars().iter().enumerate() {
        if e.on_bar(b).unwrap().ready {
            e.write_market(&mut market).unwrap();
            assert_eq!(&market[..], market_window(&rows, i).unwrap());
        }
    }
}

#[test]
#[ignore = "rewrites the golden file; run only after a deliberate, versioned change"]
fn regenerate() {
    let (rows, info) = computed();
    let tmp = format!("{GOLDEN}.tmp");
    std::fs::write(&tmp, render(&rows, &info)).unwrap();
    std::fs::rename(&tmp, GOLDEN).unwrap();
}
