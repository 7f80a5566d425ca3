//! `nq-obs-v1` market, context and position-management features.

mod real_data;

use nq_formats::obs::{MARKET_DIM, OBS_DIM_PHASE1, OBS_DIM_PHASE2, OBS_LAYOUT_V1};
use nq_formats::{Action, Bar, SessionHours};
use nq_runtime::calendar::{days_from_civil, new_york_to_utc, SessionCalendar, NS_PER_MINUTE};
use nq_runtime::features::{
    compute_series, market_window, BarInfo, BarRejected, FeatureConfig, FeatureConfigError,
    FeatureEngine, SeriesError, BAR_FEATURE_COUNT, WINDOW,
};
use nq_runtime::{ActionMask, PositionView};

const TICK: f64 = 0.25;

fn real_bars() -> Vec<Bar> {
    real_data::nq_1min_bars()
}

fn engine(session: SessionHours) -> FeatureEngine {
    FeatureEngine::new(FeatureConfig::nq_obs_v1(session, TICK)).unwrap()
}

fn bar(minute: i64, o: f64, h: f64, l: f64, c: f64, v: f64) -> Bar {
    // Minutes after Monday 2024-01-08 00:00 New York (EST).
    let base = new_york_to_utc(days_from_civil(2024, 1, 8), 0);
    Bar {
        ts_ns: base + minute * NS_PER_MINUTE,
        open: o,
        high: h,
        low: l,
        close: c,
        volume: v,
    }
}

/// An independent, non-incremental reference: each indicator recomputed from
/// the whole history up to bar `i`.
struct Reference<'a> {
    bars: &'a [Bar],
    cal: SessionCalendar,
}

fn seeded(values: &[f64], period: usize, alpha: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let seed_len = period.min(values.len());
    let mut v = values[..seed_len].iter().sum::<f64>() / seed_len as f64;
    for x in &values[seed_len..] {
        v += alpha * (x - v);
    }
    Some(v)
}

impl Reference<'_> {
    fn row(&self, i: usize) -> [f64; 11] {
        let b = &self.bars[..=i];
        let cur = b[i];
        let tr: Vec<f64> = (0..=i)
            .map(|k| {
                let r = b[k].high - b[k].low;
                if k == 0 {
                    r
                } else {
                    let pc = b[k - 1].close;
                    r.max((b[k].high - pc).abs()).max((b[k].low - pc).abs())
                }
            })
            .collect();
        let atrs: Vec<f64> = (0..=i)
            .map(|k| seeded(&tr[..=k], 14, 1.0 / 14.0).unwrap())
            .collect();
        let atr = atrs[i].max(TICK);
        let closes: Vec<f64> = b.iter().map(|x| x.close).collect();
        let vols: Vec<f64> = b.iter().map(|x| x.volume).collect();
        let ema = |p: usize| seeded(&closes, p, 2.0 / (p as f64 + 1.0)).unwrap();
        let changes: Vec<f64> = (1..=i).map(|k| closes[k] - closes[k - 1]).collect();
        let gains: Vec<f64> = changes.iter().map(|c| c.max(0.0)).collect();
        let losses: Vec<f64> = changes.iter().map(|c| (-c).max(0.0)).collect();
        let g = seeded(&gains, 14, 1.0 / 14.0).unwrap_or(0.0);
        let l = seeded(&losses, 14, 1.0 / 14.0).unwrap_or(0.0);
        let full_atrs = if atrs.len() >= 14 {
            &atrs[13..]
        } else {
            &[][..]
        };
        let slow = seeded(full_atrs, 100, 2.0 / 101.0);
        let anchor = self.cal.anchor_session(cur.ts_ns).id;
        let same: Vec<&Bar> = b
            .iter()
            .filter(|x| self.cal.anchor_session(x.ts_ns).id == anchor)
            .collect();
        let pv: f64 = same
            .iter()
            .map(|x| (x.high + x.low + x.close) / 3.0 * x.volume)
            .sum();
        let vv: f64 = same.iter().map(|x| x.volume).sum();
        let vwap = if vv > 0.0 {
            pv / vv
        } else {
            same.iter()
                .map(|x| (x.high + x.low + x.close) / 3.0)
                .sum::<f64>()
                / same.len() as f64
        };
        let range = cur.high - cur.low;
        [
            if i == 0 {
                0.0
            } else {
                (cur.close - b[i - 1].close) / atr
            },
            range / atr,
            (cur.close - cur.open) / atr,
            if range > 0.0 {
                (cur.high - cur.open.max(cur.close)) / range
            } else {
                0.0
            },
            if range > 0.0 {
                (cur.open.min(cur.close) - cur.low) / range
            } else {
                0.0
            },
            (cur.volume.max(1.0) / seeded(&vols, 20, 2.0 / 21.0).unwrap().max(1.0)).ln(),
            (cur.close - ema(9)) / atr,
            (cur.close - ema(21)) / atr,
            (cur.close - vwap) / atr,
            if g + l > 0.0 { (g - l) / (g + l) } else { 0.0 },
            slow.map_or(0.0, |s| (atr / s.max(TICK)).ln()),
        ]
        .map(|x| x.clamp(-10.0, 10.0))
    }
}

#[test]
fn rows_match_a_from_scratch_reference_on_real_bars() {
    let bars = real_bars();
    // The first 400 bars cover the warm-up; 900..1000 cover the first RTH open
    // (VWAP reset at 09:30 ET on 2023-11-20, bar 929 of the file).
    let bars = &bars[..1000];
    let reference = Reference {
        bars,
        cal: SessionCalendar::new(SessionHours::RTH),
    };
    let mut e = engine(SessionHours::RTH);
    for (i, b) in bars.iter().enumerate() {
        e.on_bar(b).unwrap();
        if !(400..900).contains(&i) {
            let expected = reference.row(i);
            for (k, (got, want)) in e.latest_row().iter().zip(expected).enumerate() {
                assert!(
                    (*got as f64 - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "bar {i} feature {} ({}): {got} vs {want}",
                    k,
                    OBS_LAYOUT_V1.bar_features[k]
                );
            }
        }
    }
}

#[test]
fn batch_equals_incremental_bit_for_bit() {
    let bars = real_bars();
    for session in [SessionHours::RTH, SessionHours::GLOBEX] {
        let config = FeatureConfig::nq_obs_v1(session, TICK);
        let mut rows = vec![0f32; bars.len() * BAR_FEATURE_COUNT];
        let mut info = vec![BarInfo::default(); bars.len()];
        compute_series(&config, &bars, &mut rows, &mut info).unwrap();
        let mut e = FeatureEngine::new(config).unwrap();
        let mut market = [0f32; MARKET_DIM];
        let mut ready = 0;
        for (i, b) in bars.iter().enumerate() {
            let live = e.on_bar(b).unwrap();
            assert_eq!(live, info[i]);
            if live.ready {
                ready += 1;
                e.write_market(&mut market).unwrap();
                let batch = market_window(&rows, i).unwrap();
                assert!(
                    batch
                        .iter()
                        .zip(&market)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "bar {i}"
                );
            }
        }
        assert_eq!(ready, bars.len() - 131);
    }
}

#[test]
fn warm_up_lengths_are_as_documented() {
    let config = FeatureConfig::nq_obs_v1(SessionHours::RTH, TICK);
    assert_eq!(config.row_defined_after(), 113);
    assert_eq!(config.warmup_bars(), 132);
    let mut e = FeatureEngine::new(config).unwrap();
    for i in 0..200 {
        let info = e.on_bar(&bar(i, 100.0, 101.0, 99.0, 100.5, 10.0)).unwrap();
        assert_eq!(info.row_defined, i + 1 >= 113, "bar {i}");
        assert_eq!(info.ready, i + 1 >= 132, "bar {i}");
        assert_eq!(e.is_ready(), info.ready);
    }
    e.reset();
    assert!(!e.is_ready());
    assert_eq!(e.bars_seen(), 0);
}

#[test]
fn degenerate_bars_give_finite_defined_values() {
    let mut e = engine(SessionHours::RTH);
    // Flat prices with zero range and zero volume: every distance is 0, the ATR
    // sits at its one-tick floor.
    for i in 0..150 {
        e.on_bar(&bar(570 + i, 100.0, 100.0, 100.0, 100.0, 0.0))
            .unwrap();
        assert_eq!(e.latest_row(), &[0.0; 11], "bar {i}");
        assert_eq!(e.atr(), TICK);
    }
    // A limit move of 1,000 points after a weekend-sized gap, then a one-bar session.
    e.on_bar(&bar(3 * 1440 + 570, 100.0, 1100.0, 100.0, 1100.0, 5.0))
        .unwrap();
    let row = *e.latest_row();
    assert_eq!(row[0], 10.0, "clipped");
    assert_eq!(row[3], 0.0);
    assert_eq!(row[4], 0.0);
    e.on_bar(&bar(4 * 1440 + 570, 1100.0, 1100.0, 1100.0, 1100.0, 1.0))
        .unwrap();
    let row = *e.latest_row();
    assert!(
        row.iter().all(|x| x.is_finite() && x.abs() <= 10.0),
        "{row:?}"
    );
    // VWAP reset: the one bar of the new session is its own VWAP.
    assert_eq!(row[8], 0.0);
    // Extreme magnitudes stay finite.
    for (i, p) in [1e-300, 1e300, 1e-300, f64::MAX, 1.0]
        .into_iter()
        .enumerate()
    {
        e.on_bar(&bar(5 * 1440 + i as i64, p, p, p, p, 1e300))
            .unwrap();
        assert!(e
            .latest_row()
            .iter()
            .all(|x| x.is_finite() && x.abs() <= 10.0));
    }
    let mut out = [f32::NAN; OBS_DIM_PHASE2];
    let pos = PositionView {
        side: 1,
        entry_price: 1.0,
        stop_price: 0.5,
        target_price: 2.0,
        bars_held: 3,
        best_price: 1.5,
        worst_price: 0.9,
    };
    e.write_observation(&pos, ActionMask::from_bits(0xff), 2, &mut out)
        .unwrap();
    assert!(out.iter().all(|x| x.is_finite()));
}

#[test]
fn refused_bars_change_nothing() {
    let mut e = engine(SessionHours::RTH);
    e.on_bar(&bar(600, 100.0, 101.0, 99.0, 100.0, 1.0)).unwrap();
    let before = format!("{e:?}");
    for (b, reason) in [
        (
            bar(601, f64::NAN, 101.0, 99.0, 100.0, 1.0),
            BarRejected::Inconsistent,
        ),
        (
            bar(601, 100.0, 99.0, 101.0, 100.0, 1.0),
            BarRejected::Inconsistent,
        ),
        (
            bar(601, 100.0, 101.0, 99.0, 100.0, -1.0),
            BarRejected::Inconsistent,
        ),
        (bar(601, 0.0, 0.0, 0.0, 0.0, 1.0), BarRejected::Inconsistent),
        (
            bar(600, 100.0, 101.0, 99.0, 100.0, 1.0),
            BarRejected::NotAfterPrevious,
        ),
        (
            bar(500, 100.0, 101.0, 99.0, 100.0, 1.0),
            BarRejected::NotAfterPrevious,
        ),
    ] {
        assert_eq!(e.on_bar(&b), Err(reason));
        assert_eq!(format!("{e:?}"), before);
    }
}

#[test]
fn vwap_resets_at_each_session_start_and_progress_follows_the_session() {
    let mut e = engine(SessionHours::RTH);
    // Overnight bars extend the previous anchor; 09:30 starts a new one.
    for m in 300..570 {
        e.on_bar(&bar(m, 50.0, 50.0, 50.0, 50.0, 1000.0)).unwrap();
    }
    let pre = *e.last_bar();
    assert!(!pre.in_session);
    assert_eq!((pre.progress.elapsed, pre.progress.remaining), (1.0, 0.0));
    let open = e
        .on_bar(&bar(570, 100.0, 103.0, 100.0, 101.0, 10.0))
        .unwrap();
    assert!(open.in_session && !open.is_last_bar);
    assert_eq!(open.session.id, days_from_civil(2024, 1, 8));
    assert_eq!(open.progress.session_bars, 390.0);
    assert!((open.progress.elapsed - 1.0 / 390.0).abs() < 1e-12);
    let vwap = (103.0 + 100.0 + 101.0) / 3.0;
    assert_eq!(e.latest_row()[8], ((101.0 - vwap) / open.atr) as f32);
    let last = e
        .on_bar(&bar(959, 100.0, 101.0, 99.0, 100.0, 10.0))
        .unwrap();
    assert!(last.is_last_bar);
    assert_eq!((last.progress.elapsed, last.progress.remaining), (1.0, 0.0));
    let after = e
        .on_bar(&bar(960, 100.0, 101.0, 99.0, 100.0, 10.0))
        .unwrap();
    assert!(!after.in_session && !after.is_last_bar);
    assert_eq!(after.session.id, open.session.id);
}

#[test]
fn context_and_position_management_features() {
    let mut e = engine(SessionHours::RTH);
    for m in 0..40 {
        e.on_bar(&bar(570 + m, 100.0, 102.0, 98.0, 100.0, 10.0))
            .unwrap();
    }
    let atr = e.atr();
    assert!((atr - 4.0).abs() < 1e-12, "steady true range 4: {atr}");
    let info = *e.last_bar();
    let long = PositionView {
        side: 1,
        entry_price: 98.0,
        stop_price: 94.0,
        target_price: 110.0,
        bars_held: 39,
        best_price: 102.0,
        worst_price: 97.0,
    };
    let c = e.context(&long);
    assert_eq!(
        c,
        [
            1.0,
            0.5,
            (39.0 / 390.0) as f32,
            info.progress.elapsed as f32,
            info.progress.remaining as f32
        ]
    );
    assert!((info.progress.elapsed - 40.0 / 390.0).abs() < 1e-12);
    let mask = ActionMask::HOLD_ONLY
        .with(Action::SlToBe)
        .with(Action::TrailLoosen);
    assert_eq!(
        e.position_management(&long, mask),
        [1.0, 0.0, 1.0, 1.5, 2.5, 1.0]
    );
    let short = PositionView {
        side: -1,
        entry_price: 104.0,
        stop_price: 108.0,
        target_price: 92.0,
        bars_held: 1,
        best_price: 98.0,
        worst_price: 102.0,
    };
    assert_eq!(e.context(&short)[..2], [-1.0, 1.0]);
    assert_eq!(
        e.position_management(&short, ActionMask::HOLD_ONLY),
        [0.0, 0.0, 0.0, 2.0, 2.0, 1.5]
    );
    let flat = e.context(&PositionView::FLAT);
    assert_eq!(flat[..3], [0.0; 3]);
    assert_eq!(
        e.position_management(&PositionView::FLAT, ActionMask::HOLD_ONLY),
        [0.0; 6]
    );
    // Huge distances are clipped.
    let far = PositionView {
        target_price: 1e9,
        ..long
    };
    assert_eq!(e.position_management(&far, mask)[4], 10.0);

    let mut obs = [0f32; OBS_DIM_PHASE2 + 3];
    assert_eq!(
        e.write_observation(&long, mask, 1, &mut obs),
        Ok(OBS_DIM_PHASE1)
    );
    assert_eq!(obs[MARKET_DIM..OBS_DIM_PHASE1], c);
    assert_eq!(
        e.write_observation(&long, mask, 2, &mut obs),
        Ok(OBS_DIM_PHASE2)
    );
    assert_eq!(
        obs[OBS_DIM_PHASE1..OBS_DIM_PHASE2],
        [1.0, 0.0, 1.0, 1.5, 2.5, 1.0]
    );
    let mut market = [0f32; MARKET_DIM];
    e.write_market(&mut market).unwrap();
    assert_eq!(obs[..MARKET_DIM], market);
    assert_eq!(market[MARKET_DIM - BAR_FEATURE_COUNT..], *e.latest_row());
    let mut small = [0f32; OBS_DIM_PHASE2 - 1];
    assert!(e.write_observation(&long, mask, 2, &mut small).is_err());
    assert!(e.write_market(&mut small[..MARKET_DIM - 1]).is_err());
}

#[test]
fn bad_configs_and_buffers_are_errors() {
    let mut layout = OBS_LAYOUT_V1;
    layout.window = 10;
    assert_eq!(
        FeatureConfig::from_layout(&layout, SessionHours::RTH, TICK),
        Err(FeatureConfigError::Window {
            layout: 10,
            supported: WINDOW
        })
    );
    assert!(FeatureConfig::from_layout(&OBS_LAYOUT_V1, SessionHours::RTH, 0.0).is_err());
    let mut c = FeatureConfig::from_layout(&OBS_LAYOUT_V1, SessionHours::RTH, TICK).unwrap();
    assert_eq!(c, FeatureConfig::nq_obs_v1(SessionHours::RTH, TICK));
    c.params.rsi_period = 0;
    assert!(FeatureEngine::new(c).is_err());
    let config = FeatureConfig::nq_obs_v1(SessionHours::RTH, TICK);
    let bars = [
        bar(1, 1.0, 1.0, 1.0, 1.0, 1.0),
        bar(1, 1.0, 1.0, 1.0, 1.0, 1.0),
    ];
    let mut rows = [0f32; 22];
    let mut info = [BarInfo::default(); 2];
    assert_eq!(
        compute_series(&config, &bars, &mut rows, &mut info),
        Err(SeriesError::Bar {
            index: 1,
            reason: BarRejected::NotAfterPrevious
        })
    );
    assert!(matches!(
        compute_series(&config, &bars, &mut rows[..21], &mut info),
        Err(SeriesError::BufferTooSmall(_))
    ));
    assert_eq!(market_window(&rows, 1), None);
}
