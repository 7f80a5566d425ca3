//! Market data for training: Parquet ticks or bars (one file, a folder, or
//! several) through the nq-tools reader; ticks become bars through the
//! runtime's `BarBuilder`, so training sees the bars live use builds.

use std::path::{Path, PathBuf};

use nq_formats::{Bar, SimConfig};
use nq_runtime::features::FeatureConfig;
use nq_tools::market_data::read_as_bars;
use nq_tools::time::format_ts;

use crate::env::MarketData;
use crate::error::UserError;

/// Bars read from `paths`, with each file and its fingerprint.
pub struct LoadedBars {
    pub bars: Vec<Bar>,
    pub files: Vec<(String, String)>,
}

/// Reads every path (file or folder of Parquet files), in time order, as
/// bars of `sim.bar_seconds` (`nq_tools::market_data::read_as_bars`), with
/// each file's fingerprint.
pub fn load_bars(paths: &[PathBuf], sim: &SimConfig) -> Result<LoadedBars, UserError> {
    let (bars, reader) =
        read_as_bars(paths, sim.bar_seconds).map_err(|e| UserError::new(e.to_string()))?;
    let mut files = Vec::new();
    for f in reader.files() {
        let bytes =
            std::fs::read(f).map_err(|e| UserError::new(format!("{}: {e}", f.display())))?;
        // Absolute, so that a resume from another directory finds them.
        let absolute = std::fs::canonicalize(f).unwrap_or_else(|_| f.to_path_buf());
        files.push((absolute.display().to_string(), fnv1a64(&bytes)));
    }
    Ok(LoadedBars { bars, files })
}

/// Training needs at least one session with a decision bar. When there is
/// none, says why: no bars inside the session hours (`sim.session`, e.g.
/// overnight-only ticks under RTH hours), or too few bars before the session
/// end to warm the features up.
pub fn check_sessions(market: &MarketData, sim: &SimConfig) -> Result<(), UserError> {
    if !market.sessions.is_empty() {
        return Ok(());
    }
    let (Some(first), Some(last)) = (market.bars.first(), market.bars.last()) else {
        return Err(UserError::new("market data: no bars"));
    };
    let in_session = market.info.iter().filter(|i| i.in_session).count();
    let warmup =
        FeatureConfig::nq_obs_v1(sim.session, sim.instrument.spec().tick_size).warmup_bars();
    let why = if in_session == 0 {
        format!(
            "none of them starts inside the session hours {} New York (config sim.session; \"GLOBEX\" trades around the clock)",
            sim.session
        )
    } else {
        format!(
            "{in_session} of them are inside the session hours {} New York, but no session has a bar left after the first {warmup} bars, which warm the features up; give more data (or a shorter sim.bar_seconds)",
            sim.session
        )
    };
    Err(UserError::new(format!(
        "market data: no session to train on: {} bars of {} s from {} to {}; {why}",
        market.bars.len(),
        sim.bar_seconds,
        format_ts(first.ts_ns),
        format_ts(last.ts_ns),
    )))
}

/// The (path, fnv1a64 hash) of each data file a run recorded in its
/// `metadata.json`.
pub fn recorded_data_files(run_dir: &Path) -> Result<Vec<(String, String)>, UserError> {
    let path = run_dir.join("metadata.json");
    let bad =
        |e: &dyn std::fmt::Display| UserError::new(format!("--resume {}: {e}", path.display()));
    let text = std::fs::read_to_string(&path).map_err(|e| bad(&e))?;
    let meta: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(&e))?;
    let files = meta["data_files"]
        .as_array()
        .ok_or_else(|| bad(&"no data_files list"))?;
    files
        .iter()
        .map(|f| match (f["path"].as_str(), f["fnv1a64"].as_str()) {
            (Some(p), Some(h)) => Ok((p.to_string(), h.to_string())),
            _ => Err(bad(&"a data_files entry without path and fnv1a64")),
        })
        .collect()
}

/// SPEC 7: a resumed run gives the same result only on the same data, so
/// every file differing from the run's record (missing, changed, or extra)
/// is named. Paths are compared as the files they lead to, so a run may be
/// resumed from another working directory.
pub fn check_same_data(
    run_dir: &Path,
    recorded: &[(String, String)],
    loaded: &[(String, String)],
) -> Result<(), UserError> {
    let key = |p: &str| std::fs::canonicalize(p).unwrap_or_else(|_| PathBuf::from(p));
    let loaded_keys: Vec<PathBuf> = loaded.iter().map(|(p, _)| key(p)).collect();
    let recorded_keys: Vec<PathBuf> = recorded.iter().map(|(p, _)| key(p)).collect();
    let mut problems = Vec::new();
    for ((path, hash), k) in recorded.iter().zip(&recorded_keys) {
        match loaded_keys.iter().position(|l| l == k) {
            None => problems.push(format!("{path}: missing (the run was trained on it)")),
            Some(i) if loaded[i].1 != *hash => problems.push(format!(
                "{path}: different hash (fnv1a64 {} now, {hash} when the run started)",
                loaded[i].1
            )),
            Some(_) => {}
        }
    }
    for ((path, _), k) in loaded.iter().zip(&loaded_keys) {
        if !recorded_keys.contains(k) {
            problems.push(format!("{path}: extra (not among the run's data files)"));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(UserError::new(format!(
        "--resume {}: the data differs from the run's ({}): {}",
        run_dir.display(),
        run_dir.join("metadata.json").display(),
        problems.join("; ")
    )))
}

/// The default data set of the main job: `data/` beside the workspace root.
pub fn default_data_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data");
    // Printed in the nq-eval command at the end: `/repo/data`, not `/repo/trainer/../data`.
    std::fs::canonicalize(&dir).unwrap_or(dir)
}

/// FNV-1a, 64 bits, as 16 hex digits: a fingerprint of each data file (and
/// of an `--init` checkpoint) for `metadata.json`.
pub fn fnv1a64(bytes: &[u8]) -> String {
    format!("{:016x}", nq_formats::hash::fnv1a64(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_data_dir_is_printed_without_dot_dot() {
        let dir = default_data_dir();
        assert!(dir.ends_with("data"), "{}", dir.display());
        if dir.exists() {
            assert!(
                !dir.components()
                    .any(|c| c == std::path::Component::ParentDir),
                "{}",
                dir.display()
            );
        }
    }
}
