//! Every feature is finite and within the clip for every bar sequence, and
//! refused bars never disturb the engine.

use nq_formats::obs::OBS_DIM_PHASE2;
use nq_formats::{Bar, SessionHours};
use nq_runtime::features::{FeatureConfig, FeatureEngine};
use nq_runtime::{ActionMask, PositionView};
use proptest::prelude::*;

/// Prices across the whole positive f64 range, with flat runs and repeats.
fn price() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => 1000.0f64..30_000.0,
        1 => Just(15_000.0),
        1 => 1e-300f64..1e-6,
        1 => 1e6f64..1e300,
        1 => Just(f64::MAX),
        1 => Just(f64::MIN_POSITIVE),
    ]
}

fn volume() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        0.0f64..5_000.0,
        Just(f64::MAX),
        1e300f64..f64::MAX
    ]
}

/// Consistent bars (sorted prices), time steps from one minute to months.
fn bars() -> impl Strategy<Value = Vec<Bar>> {
    let step = prop_oneof![8 => Just(1i64), 2 => 2i64..2_000, 1 => 2_000i64..200_000];
    prop::collection::vec(
        (step, [price(), price(), price(), price()], volume()),
        1..400,
    )
    .prop_map(|raw| {
        let mut minute = 28_000_000i64; // 2023
        raw.into_iter()
            .map(|(dt, mut p, volume)| {
                minute += dt;
                p.sort_by(f64::total_cmp);
                Bar {
                    ts_ns: minute * 60_000_000_000,
                    open: p[1],
                    high: p[3],
                    low: p[0],
                    close: p[2],
                    volume,
                }
            })
            .collect()
    })
}

fn position() -> impl Strategy<Value = PositionView> {
    (
        -1i8..=1,
        [price(), price(), price(), price(), price()],
        any::<u32>(),
    )
        .prop_map(|(side, p, bars_held)| PositionView {
            side,
            entry_price: p[0],
            stop_price: p[1],
            target_price: p[2],
            bars_held,
            best_price: p[3],
            worst_price: p[4],
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn observations_are_finite_and_clipped(
        bars in bars(),
        pos in position(),
        mask_bits in any::<u8>(),
        globex in any::<bool>(),
    ) {
        let session = if globex { SessionHours::GLOBEX } else { SessionHours::RTH };
        let mut e = FeatureEngine::new(FeatureConfig::nq_obs_v1(session, 0.25)).unwrap();
        let mut obs = [0f32; OBS_DIM_PHASE2];
        for b in &bars {
            let info = e.on_bar(b).unwrap();
            prop_assert!(info.atr >= 0.25, "ATR below its floor: {}", info.atr);
            prop_assert!((0.0..=1.0).contains(&info.progress.elapsed));
            e.write_observation(&pos, ActionMask::from_bits(mask_bits), 2, &mut obs).unwrap();
            prop_assert!(obs.iter().all(|x| x.is_finite() && x.abs() <= 10.0), "{:?}", obs);
        }
    }

    #[test]
    fn arbitrary_bars_never_panic_and_refusals_change_nothing(
        raw in prop::collection::vec((any::<i64>(), any::<[f64; 5]>()), 1..100),
    ) {
        let mut e = FeatureEngine::new(FeatureConfig::nq_obs_v1(SessionHours::RTH, 0.25)).unwrap();
        for (ts_ns, [open, high, low, close, volume]) in raw {
            let before = format!("{e:?}");
            let bar = Bar { ts_ns, open, high, low, close, volume };
            if e.on_bar(&bar).is_err() {
                prop_assert_eq!(format!("{e:?}"), before);
            } else {
                prop_assert!(e.latest_row().iter().all(|x| x.is_finite()));
            }
        }
    }
}
