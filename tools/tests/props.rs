//! Property tests: random valid ticks and bars survive Parquet and text round trips exactly.

use std::fmt::Write as _;
use std::path::Path;

use nq_formats::{Bar, Side, Tick};
use nq_tools::market_data::{read_bars, BarWriter, MarketReader, TickWriter};
use nq_tools::text_import::{parse_bytes, ImportOptions, ParsedRecords, TextFormat};
use proptest::prelude::*;

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::None), Just(Side::Buy), Just(Side::Sell)]
}

/// Time-ordered ticks (duplicates allowed) on a 0.25 grid.
fn ticks(max: usize) -> impl Strategy<Value = Vec<Tick>> {
    (
        0i64..4_000_000_000_000_000_000,
        prop::collection::vec(
            (0i64..5_000_000_000, 1u32..200_000, 0u32..500, side()),
            0..max,
        ),
    )
        .prop_map(|(start, rows)| {
            let mut ts = start;
            rows.into_iter()
                .map(|(dt, p, s, side)| {
                    ts += dt;
                    Tick {
                        ts_ns: ts,
                        price: f64::from(p) * 0.25,
                        size: f64::from(s),
                        side,
                    }
                })
                .collect()
        })
}

fn bars(max: usize) -> impl Strategy<Value = Vec<Bar>> {
    (
        0i64..4_000_000_000_000_000_000,
        prop::collection::vec(
            (
                1i64..10_000_000_000_000,
                4u32..200_000,
                (0u32..40, 0u32..40, 0u32..40),
                0u32..100_000,
            ),
            0..max,
        ),
    )
        .prop_map(|(start, rows)| {
            let mut ts = start;
            rows.into_iter()
                .map(|(dt, base, (o, h, c), v)| {
                    ts += dt;
                    let low = f64::from(base) * 0.25;
                    let high = low + f64::from(h.max(o).max(c)) * 0.25;
                    Bar {
                        ts_ns: ts,
                        open: low + f64::from(o) * 0.25,
                        high,
                        low,
                        close: low + f64::from(c) * 0.25,
                        volume: f64::from(v),
                    }
                })
                .collect()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn ticks_round_trip_through_parquet(ticks in ticks(3000), batch in 1usize..5000) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let mut w = TickWriter::create(&path).unwrap();
        for chunk in ticks.chunks(977) {
            w.write(chunk).unwrap();
        }
        prop_assert_eq!(w.finish().unwrap(), ticks.len() as u64);
        let back = MarketReader::open(&path).unwrap().with_batch_size(batch).read_all_ticks().unwrap();
        prop_assert_eq!(back, ticks);
    }

    #[test]
    fn bars_round_trip_through_parquet(bars in bars(500)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.parquet");
        let mut w = BarWriter::create(&path).unwrap();
        w.write(&bars).unwrap();
        w.finish().unwrap();
        prop_assert_eq!(read_bars(&path).unwrap(), bars);
    }

    #[test]
    fn csv_tick_lines_parse_back_exactly(ticks in ticks(300), crlf in any::<bool>()) {
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut text = format!("ts_utc_ns,price,size,side{eol}");
        for t in &ticks {
            let side = if t.side == Side::None { "" } else { t.side.letter() };
            write!(text, "{},{},{},{side}{eol}", t.ts_ns, t.price, t.size).unwrap();
        }
        let (parsed, report) = parse_bytes(Path::new("p.csv"), text.as_bytes(), &ImportOptions::default()).unwrap();
        prop_assert_eq!(report.format, TextFormat::CsvTicks);
        prop_assert_eq!(parsed, ParsedRecords::Ticks(ticks));
    }

    #[test]
    fn csv_bar_lines_parse_back_exactly(bars in bars(300)) {
        let mut text = String::from("ts_utc_ns,open,high,low,close,volume\n");
        for b in &bars {
            writeln!(text, "{},{},{},{},{},{}", b.ts_ns, b.open, b.high, b.low, b.close, b.volume).unwrap();
        }
        let (parsed, _) = parse_bytes(Path::new("p.csv"), text.as_bytes(), &ImportOptions::default()).unwrap();
        prop_assert_eq!(parsed, ParsedRecords::Bars(bars));
    }

    /// Any decimal a writer may print (Rust's shortest round-trip form, or a
    /// fixed number of places) reads back as the same double as std's parser.
    #[test]
    fn prices_parse_like_std(x in 0.0001f64..1.0e9, places in 0usize..12) {
        for text in [format!("{x}"), format!("{x:.places$}")] {
            let v: f64 = text.parse().unwrap();
            if v <= 0.0 { continue; }
            let line = format!("1,{text},1,B\n");
            let (parsed, _) = parse_bytes(Path::new("p.csv"), line.as_bytes(), &ImportOptions { format: Some(TextFormat::CsvTicks), ..Default::default() }).unwrap();
            let ParsedRecords::Ticks(t) = parsed else { panic!() };
            prop_assert_eq!(t[0].price, v, "{}", text);
        }
    }

    /// Garbage never panics: it parses or gives a line-numbered error.
    #[test]
    fn arbitrary_text_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400), format in 0usize..4) {
        let opts = ImportOptions { format: Some(TextFormat::ALL[format]), ..Default::default() };
        if let Err(e) = parse_bytes(Path::new("g.csv"), &bytes, &opts) {
            prop_assert!(e.to_string().contains("g.csv: line "), "{}", e);
        }
    }
}
