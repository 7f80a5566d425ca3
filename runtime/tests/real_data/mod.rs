//! The real NQ 1-minute bars of `../shared/data/real/nq_firstrate_2023_11`
//! (read-only, beside the repository), shared by the runtime's tests and benches.

use nq_formats::Bar;

/// All 14,714 bars, in file order (UTC bar starts).
pub fn nq_1min_bars() -> Vec<Bar> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/real/nq_firstrate_2023_11/nq_1min_bars_utc.csv"
    );
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path} (real data beside the repository): {e}"))
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let p = |i: usize| f[i].parse::<f64>().unwrap();
            Bar {
                ts_ns: f[0].parse().unwrap(),
                open: p(1),
                high: p(2),
                low: p(3),
                close: p(4),
                volume: p(5),
            }
        })
        .collect()
}
