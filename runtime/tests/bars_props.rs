//! Property tests of the bar builder over random tick streams.

use nq_formats::{Bar, Tick};
use nq_runtime::bars::{BarBuilder, TickRejected};
use proptest::prelude::*;

const BAR_SECONDS: u32 = 60;
const BAR_NS: i64 = BAR_SECONDS as i64 * 1_000_000_000;

/// Ticks with non-decreasing times: steps of 0 (duplicates), sub-bar, and
/// multi-bar gaps, on a 0.25 grid.
fn tick_stream() -> impl Strategy<Value = Vec<Tick>> {
    let step = prop_oneof![
        3 => Just(0i64),
        10 => 1i64..5_000_000_000,
        2 => 50_000_000_000i64..200_000_000_000,
        1 => 1_000_000_000_000i64..100_000_000_000_000,
    ];
    (
        -1_000_000_000_000_000i64..2_000_000_000_000_000_000,
        prop::collection::vec((step, 1u32..80_000, 0u32..50), 1..300),
    )
        .prop_map(|(start, steps)| {
            let mut ts = start;
            steps
                .into_iter()
                .map(|(dt, price_ticks, size)| {
                    ts += dt;
                    Tick {
                        ts_ns: ts,
                        price: price_ticks as f64 * 0.25,
                        size: size as f64,
                        ..Tick::default()
                    }
                })
                .collect()
        })
}

/// The bars the stream must give: one per bar interval with trades.
fn reference_bars(ticks: &[Tick]) -> Vec<Bar> {
    let mut out: Vec<Bar> = Vec::new();
    for t in ticks {
        let start = t.ts_ns.div_euclid(BAR_NS) * BAR_NS;
        match out.last_mut() {
            Some(b) if b.ts_ns == start => {
                b.high = b.high.max(t.price);
                b.low = b.low.min(t.price);
                b.close = t.price;
                b.volume += t.size;
            }
            _ => out.push(Bar {
                ts_ns: start,
                open: t.price,
                high: t.price,
                low: t.price,
                close: t.price,
                volume: t.size,
            }),
        }
    }
    out
}

fn build(ticks: &[Tick], flush_at: Option<usize>) -> Vec<Bar> {
    let mut b = BarBuilder::new(BAR_SECONDS);
    let mut out = Vec::new();
    for (i, t) in ticks.iter().enumerate() {
        if flush_at == Some(i) {
            // The clock reads this tick's time: closes the open bar only if
            // this tick would have closed it anyway.
            out.extend(b.flush(t.ts_ns));
        }
        out.extend(b.push(t).expect("valid tick refused"));
    }
    out.extend(b.flush(i64::MAX));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn bars_aggregate_every_tick_once(ticks in tick_stream()) {
        let bars = build(&ticks, None);
        let expected = reference_bars(&ticks);
        prop_assert_eq!(&bars, &expected);
        for w in bars.windows(2) {
            prop_assert!(w[0].ts_ns < w[1].ts_ns);
        }
        for b in &bars {
            prop_assert!(b.is_consistent() || b.volume == 0.0 && b.low <= b.high);
            prop_assert_eq!(b.ts_ns.rem_euclid(BAR_NS), 0);
        }
        let total: f64 = ticks.iter().map(|t| t.size).sum();
        let counted: f64 = bars.iter().map(|b| b.volume).sum();
        prop_assert_eq!(total, counted);
    }

    #[test]
    fn flushing_anywhere_gives_the_same_bars(ticks in tick_stream(), at in any::<prop::sample::Index>()) {
        let i = at.index(ticks.len());
        prop_assert_eq!(build(&ticks, Some(i)), reference_bars(&ticks));
    }

    #[test]
    fn splitting_the_stream_and_flushing_at_a_bar_boundary_is_consistent(
        ticks in tick_stream(),
        at in any::<prop::sample::Index>(),
    ) {
        // Close the stream at a clock time between two ticks, then carry on
        // with the rest: the bars are those of the two halves, built apart.
        let i = at.index(ticks.len());
        let cut = ticks[i].ts_ns.div_euclid(BAR_NS) * BAR_NS;
        let (left, right): (Vec<Tick>, Vec<Tick>) = ticks.iter().partition(|t| t.ts_ns < cut);
        let mut b = BarBuilder::new(BAR_SECONDS);
        let mut bars = Vec::new();
        for t in &left {
            bars.extend(b.push(t).unwrap());
        }
        bars.extend(b.flush(cut));
        prop_assert!(b.open_bar().is_none());
        for t in &right {
            bars.extend(b.push(t).unwrap());
        }
        bars.extend(b.flush(i64::MAX));
        let mut expected = reference_bars(&left);
        expected.extend(reference_bars(&right));
        prop_assert_eq!(bars, expected);
    }

    #[test]
    fn arbitrary_ticks_never_panic_and_bad_ones_change_nothing(
        raw in prop::collection::vec((any::<i64>(), any::<f64>(), any::<f64>()), 0..200),
        seconds in 0u32..100_000,
    ) {
        let mut b = BarBuilder::new(seconds);
        let mut last_bar_start = i64::MIN;
        for (ts_ns, price, size) in raw {
            let before = b;
            match b.push(&Tick { ts_ns, price, size, ..Tick::default() }) {
                Ok(Some(bar)) => {
                    prop_assert!(bar.ts_ns > last_bar_start || last_bar_start == i64::MIN);
                    prop_assert!(bar.low <= bar.open && bar.open <= bar.high);
                    last_bar_start = bar.ts_ns;
                }
                Ok(None) => {}
                Err(reason) => {
                    prop_assert_eq!(b, before);
                    prop_assert!(!reason.message().is_empty());
                }
            }
            let _ = b.flush(ts_ns);
        }
    }
}

#[test]
fn real_one_minute_bars_aggregate_to_the_vendor_five_minute_bars() {
    // Each 1-minute bar replayed as four ticks (open, high, low, close) must
    // give the vendor's 5-minute bars: the PROVENANCE cross-check.
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/real/nq_firstrate_2023_11"
    );
    let read = |name: &str| -> Vec<Bar> {
        std::fs::read_to_string(format!("{dir}/{name}"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<f64> = l.split(',').map(|x| x.parse().unwrap()).collect();
                Bar {
                    ts_ns: l.split(',').next().unwrap().parse().unwrap(),
                    open: f[1],
                    high: f[2],
                    low: f[3],
                    close: f[4],
                    volume: f[5],
                }
            })
            .collect()
    };
    let one = read("nq_1min_bars_utc.csv");
    let five = read("nq_5min_bars_utc.csv");
    let mut b = BarBuilder::new(300);
    let mut out = Vec::new();
    for m in &one {
        for (k, (price, size)) in [
            (m.open, m.volume),
            (m.high, 0.0),
            (m.low, 0.0),
            (m.close, 0.0),
        ]
        .into_iter()
        .enumerate()
        {
            let t = Tick {
                ts_ns: m.ts_ns + k as i64,
                price,
                size,
                ..Tick::default()
            };
            out.extend(b.push(&t).unwrap());
        }
    }
    out.extend(b.flush(i64::MAX));
    assert_eq!(out.len(), 2943);
    assert_eq!(out, five);
    assert_eq!(
        b.push(&Tick {
            ts_ns: 0,
            price: 1.0,
            size: 1.0,
            ..Tick::default()
        }),
        Err(TickRejected::TimeWentBackwards)
    );
}
