//! Market data as bars, whatever the files hold: bars as they are (each file
//! checked for the bar length), ticks built into bars by the runtime's
//! `BarBuilder`, so that training (and the Python environment) sees the bars
//! live use builds.

use std::path::PathBuf;

use nq_formats::Bar;
use nq_runtime::bars::BarBuilder;

use super::{DataKind, MarketReader};
use crate::eval::BarSpacing;
use crate::{Error, Result};

/// The bars of every path (a file or a folder of Parquet files), in time
/// order, `bar_seconds` long; the reader too, for its files.
pub fn read_as_bars(paths: &[PathBuf], bar_seconds: u32) -> Result<(Vec<Bar>, MarketReader)> {
    let reader = MarketReader::open_many(paths)?;
    let bars = match reader.kind() {
        DataKind::Bars => {
            check_bar_length(&reader, bar_seconds)?;
            reader.read_all_bars()?
        }
        DataKind::Ticks => {
            let mut builder = BarBuilder::new(bar_seconds);
            let mut bars = Vec::new();
            let mut last_ts = i64::MIN;
            reader.for_each_tick_chunk(|ticks| {
                for t in ticks {
                    // The reader already refused bad and out-of-order rows.
                    if let Ok(Some(bar)) = builder.push(t) {
                        bars.push(bar);
                    }
                    last_ts = t.ts_ns;
                }
                Ok(())
            })?;
            if let Some(bar) = builder.flush(last_ts.saturating_add(builder.bar_ns())) {
                bars.push(bar);
            }
            bars
        }
    };
    if bars.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no bars in the data",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok((bars, reader))
}

/// Bars of another length would be read as `bar_seconds` bars. Checked file
/// by file, with nq-eval's check, so the message names the file that
/// differs.
fn check_bar_length(reader: &MarketReader, bar_seconds: u32) -> Result<()> {
    for file in reader.files() {
        let one = MarketReader::open(file)?;
        let mut spacing = BarSpacing::default();
        one.for_each_bar_chunk(|bars| {
            bars.iter().for_each(|b| spacing.observe(b.ts_ns));
            Ok(())
        })?;
        spacing.check(&one, bar_seconds, "the training config (sim.bar_seconds)")?;
    }
    Ok(())
}
