//! The nq-signal line parser: CSV and JSON ticks and fills read back what
//! was written, and no input makes it (or a whole session) panic.

use nq_formats::{Side, Tick};
use nq_runtime::engine::FillReport;
use nq_tools::checkpoint_file::CheckpointFile;
use nq_tools::signal::protocol::{parse_line, Message};
use nq_tools::signal::{LatePolicy, Options, Signal};
use proptest::prelude::*;

const P1: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../runtime/fixtures/policy/policy_tanh_p1.safetensors"
);

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::None), Just(Side::Buy), Just(Side::Sell)]
}

fn tick() -> impl Strategy<Value = Tick> {
    (
        (i64::MIN + 1)..=i64::MAX,
        prop_oneof![
            (1u32..400_000).prop_map(|k| f64::from(k) * 0.25),
            1e-9f64..1e12,
        ],
        prop_oneof![(0u32..10_000).prop_map(f64::from), 0.0f64..1e9],
        side(),
    )
        .prop_map(|(ts_ns, price, size, side)| Tick {
            ts_ns,
            price,
            size,
            side,
        })
}

fn letter(side: Side) -> &'static str {
    match side {
        Side::Buy => "B",
        Side::Sell => "A",
        Side::None => "N",
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| v.to_string())
}

fn json_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "null".into(), |v| v.to_string())
}

proptest! {
    #[test]
    fn csv_ticks_round_trip(t in tick(), crlf in any::<bool>()) {
        let line = format!("{},{},{},{}{}", t.ts_ns, t.price, t.size, letter(t.side),
            if crlf { "\r" } else { "" });
        prop_assert_eq!(parse_line(line.as_bytes()), Ok(Message::Tick(t)));
    }

    #[test]
    fn json_ticks_round_trip(t in tick(), typed in any::<bool>(), spaced in any::<bool>()) {
        let sp = if spaced { " " } else { "" };
        let ty = if typed { format!("\"type\":{sp}\"tick\",{sp}") } else { String::new() };
        let line = format!(
            "{{{sp}{ty}\"ts_utc_ns\":{sp}{},{sp}\"price\":{},\"size\":{},\"side\":\"{}\"{sp}}}",
            t.ts_ns, t.price, t.size, letter(t.side)
        );
        prop_assert_eq!(parse_line(line.as_bytes()), Ok(Message::Tick(t)));
    }

    #[test]
    fn fills_round_trip(
        ts_ns in any::<i64>().prop_filter("i64::MIN has no positive twin", |t| *t != i64::MIN),
        position in -1i8..=1,
        entry in 1.0f64..1e6,
        stop in proptest::option::of(1.0f64..1e6),
        target in proptest::option::of(1.0f64..1e6),
    ) {
        let fill = FillReport { ts_ns, position, entry_price: entry, stop_price: stop, target_price: target };
        let csv = format!("fill,{ts_ns},{position},{entry},{},{}", opt(stop), opt(target));
        prop_assert_eq!(parse_line(csv.as_bytes()), Ok(Message::Fill(fill)));
        let json = format!(
            "{{\"type\":\"fill\",\"ts_utc_ns\":{ts_ns},\"position\":{position},\"entry_price\":{entry},\"stop\":{},\"target\":{}}}",
            json_opt(stop), json_opt(target)
        );
        prop_assert_eq!(parse_line(json.as_bytes()), Ok(Message::Fill(fill)));
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Err(e) = parse_line(&bytes) {
            prop_assert!(e.column >= 1 && e.column <= bytes.len() + 1, "{e:?}");
        }
    }

    #[test]
    fn near_miss_lines_never_panic(line in "[{}\\[\\]\":,0-9a-z_ .eE+-]{0,80}") {
        if let Err(e) = parse_line(line.as_bytes()) {
            prop_assert!(e.column >= 1 && e.column <= line.len() + 1, "{e:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A session fed any mix of valid and broken lines answers every broken
    /// one and never panics or stops (without --strict).
    #[test]
    fn sessions_survive_any_lines(
        lines in proptest::collection::vec(
            prop_oneof![
                (0i64..200, 1u32..80_000, 0u32..50).prop_map(|(s, p, n)|
                    format!("{},{},{},B", 1_700_000_000_000_000_000 + s * 1_000_000_000, f64::from(p) * 0.25, n)),
                (0i64..200).prop_map(|s| format!("clock,{}", 1_700_000_000_000_000_000 + s * 1_000_000_000)),
                (-2i8..=2, 1u32..80_000).prop_map(|(p, e)| format!("fill,1700000000000000000,{p},{}", f64::from(e) * 0.25)),
                "[ -~]{0,40}",
            ],
            0..60,
        )
    ) {
        let ckpt = CheckpointFile::read(P1).unwrap();
        let options = Options { late: LatePolicy::Reject, strict: false, show_warmup: false };
        let mut signal = Signal::new(ckpt.engine(None).unwrap(), options);
        let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let mut out = Vec::new();
        let stats = signal.serve(input.as_bytes(), &mut out).unwrap();
        prop_assert_eq!(stats.lines, lines.len() as u64);
        let text = String::from_utf8(out).unwrap();
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            prop_assert!(v["type"].is_string());
        }
        prop_assert_eq!(
            text.lines().filter(|l| l.contains("\"type\":\"rejected\"")).count() as u64,
            stats.rejected
        );
    }
}
