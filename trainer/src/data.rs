//! Market data for training: Parquet ticks or bars (one file, a folder, or
//! several) through the nq-tools reader; ticks become bars through the
//! runtime's `BarBuilder`, so training sees the bars live use builds.

use std::path::{Path, PathBuf};

use nq_formats::{Bar, SimConfig};
use nq_runtime::bars::BarBuilder;
use nq_tools::eval::BarSpacing;
use nq_tools::market_data::{DataKind, MarketReader};

use crate::error::UserError;
use crate::train::fnv1a64;

/// Bars read from `paths`, with each file and its fingerprint.
pub struct LoadedBars {
    pub bars: Vec<Bar>,
    pub files: Vec<(String, String)>,
}

/// Reads every path (file or folder of Parquet files), in time order.
pub fn load_bars(paths: &[PathBuf], sim: &SimConfig) -> Result<LoadedBars, UserError> {
    let reader = MarketReader::open_many(paths).map_err(|e| UserError::new(e.to_string()))?;
    let mut files = Vec::new();
    for f in reader.files() {
        let bytes =
            std::fs::read(f).map_err(|e| UserError::new(format!("{}: {e}", f.display())))?;
        files.push((f.display().to_string(), fnv1a64(&bytes)));
    }
    let bars = match reader.kind() {
        DataKind::Bars => {
            check_bar_length(&reader, sim.bar_seconds)?;
            reader
                .read_all_bars()
                .map_err(|e| UserError::new(e.to_string()))?
        }
        DataKind::Ticks => {
            let mut builder = BarBuilder::new(sim.bar_seconds);
            let mut bars = Vec::new();
            let mut last_ts = i64::MIN;
            reader
                .for_each_tick_chunk(|ticks| {
                    for t in ticks {
                        // The reader already refused bad and out-of-order rows.
                        if let Ok(Some(bar)) = builder.push(t) {
                            bars.push(bar);
                        }
                        last_ts = t.ts_ns;
                    }
                    Ok(())
                })
                .map_err(|e| UserError::new(e.to_string()))?;
            if let Some(bar) = builder.flush(last_ts.saturating_add(builder.bar_ns())) {
                bars.push(bar);
            }
            bars
        }
    };
    if bars.is_empty() {
        return Err(UserError::new(format!(
            "{}: no bars in the data",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(LoadedBars { bars, files })
}

/// Bars of another length would train a checkpoint labelled with the
/// configured one. Checked file by file, with nq-eval's check, so the message
/// names the file that differs.
fn check_bar_length(reader: &MarketReader, bar_seconds: u32) -> Result<(), UserError> {
    for file in reader.files() {
        let one = MarketReader::open(file).map_err(|e| UserError::new(e.to_string()))?;
        let mut spacing = BarSpacing::default();
        one.for_each_bar_chunk(|bars| {
            bars.iter().for_each(|b| spacing.observe(b.ts_ns));
            Ok(())
        })
        .and_then(|()| spacing.check(&one, bar_seconds, "the training config (sim.bar_seconds)"))
        .map_err(|e| UserError::new(e.to_string()))?;
    }
    Ok(())
}

/// The default data set of the main job: `data/` beside the workspace root.
pub fn default_data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("data")
}
