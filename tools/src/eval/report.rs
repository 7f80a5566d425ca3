//! The `--report DIR` folder: `trades.parquet`, `equity.parquet`,
//! `summary.parquet` (schemas of `nq_formats::schema`), `summary.json` (a
//! [`Comparison`]), `equity.svg` and `report.html`.
//! Everything is written into `DIR.tmp` and renamed into place at the end, so
//! a failure leaves no partial folder; nothing depends on the clock, so the
//! same inputs give byte-identical files.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, Int8Array,
    RecordBatch, StringArray, TimestampNanosecondArray, UInt8Array,
};
use arrow_schema::SchemaRef;
use nq_formats::{schema, Action};
use nq_runtime::sim::side_name;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::picture::{equity_svg, report_html};
use super::significance::Significance;
use super::{Comparison, DecisionRow, EquityRow, Run, Summary};
use crate::market_data::temp_path;
use crate::{Error, Result};

/// Every file a report folder holds: the only entries `write_report` will
/// replace when `DIR` already exists.
pub const REPORT_FILES: [&str; 6] = [
    "trades.parquet",
    "equity.parquet",
    "summary.parquet",
    "summary.json",
    "equity.svg",
    "report.html",
];

/// Refuses a `dir` that replacing would lose something in: anything but a
/// previous report (a user's own files, a subfolder), or a path that is not
/// a folder. An absent or empty folder, or an earlier report, passes.
pub fn check_report_dir(dir: &Path) -> Result<()> {
    let refuse = |problem: String| {
        Error::Usage(format!(
            "--report {}: {problem}; nq-eval replaces the whole folder, so it only \
             overwrites an earlier report (choose another folder or empty this one)",
            dir.display()
        ))
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) if !dir.is_dir() => return Err(refuse("exists and is not a folder".into())),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut foreign: Vec<String> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if !(is_file && REPORT_FILES.contains(&name.as_str())) {
            foreign.push(name);
        }
    }
    // Sorted, so the message names the same entry on every system.
    match foreign.iter().min() {
        None => Ok(()),
        Some(first) => Err(refuse(format!(
            "holds {first:?}{}, which is not an nq-eval report file",
            match foreign.len() {
                1 => String::new(),
                n => format!(" and {} other entries", n - 1),
            }
        ))),
    }
}

/// Writes the report folder for `runs` (their summaries in `comparison`,
/// same order), replacing an earlier report there; refuses a folder holding
/// anything else ([`check_report_dir`]) before writing anything.
pub fn write_report(dir: &Path, runs: &[Run], comparison: &Comparison) -> Result<()> {
    check_report_dir(dir)?;
    let tmp = temp_path(dir);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let written = write_files(&tmp, runs, comparison).and_then(|()| {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))
    });
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    written
}

fn write_files(dir: &Path, runs: &[Run], comparison: &Comparison) -> Result<()> {
    let summaries = &comparison.summaries;
    write_parquet(&dir.join("trades.parquet"), trades_batch(runs)?)?;
    write_parquet(&dir.join("equity.parquet"), equity_batch(runs)?)?;
    write_parquet(&dir.join("summary.parquet"), summary_batch(summaries)?)?;
    let json_path = dir.join("summary.json");
    let json = serde_json::to_string_pretty(comparison)
        .map_err(|e| Error::Internal(format!("summary.json: {e}")))?;
    std::fs::write(&json_path, json + "\n").map_err(|e| Error::io(&json_path, e))?;
    // The picture is of the first run: the best policy.
    let svg = runs.first().map(equity_svg).unwrap_or_default();
    let svg_path = dir.join("equity.svg");
    std::fs::write(&svg_path, &svg).map_err(|e| Error::io(&svg_path, e))?;
    let html_path = dir.join("report.html");
    std::fs::write(&html_path, report_html(summaries, &svg)).map_err(|e| Error::io(&html_path, e))
}

fn write_parquet(path: &Path, batch: RecordBatch) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let fail = |e: parquet::errors::ParquetError| Error::bad_file(path, None, e.to_string());
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(fail)?;
    writer.write(&batch).map_err(fail)?;
    writer.close().map_err(fail)?;
    Ok(())
}

fn batch(schema: SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    RecordBatch::try_new(schema, columns).map_err(|e| Error::Internal(e.to_string()))
}

fn timestamps(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampNanosecondArray::from_iter_values(values).with_timezone("UTC"))
}

fn trades_batch(runs: &[Run]) -> Result<RecordBatch> {
    let rows: Vec<_> = runs
        .iter()
        .flat_map(|r| r.trades.iter().map(move |t| (r.name.as_str(), t)))
        .collect();
    let f64s = |f: fn(&nq_runtime::sim::TradeRecord) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|(_, t)| f(t)),
        ))
    };
    batch(
        schema::trades(),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|(n, _)| *n))),
            timestamps(rows.iter().map(|(_, t)| t.entry_ts_ns)),
            timestamps(rows.iter().map(|(_, t)| t.exit_ts_ns)),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|(_, t)| side_name(t.side)),
            )),
            Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|(_, t)| t.contracts),
            )),
            f64s(|t| t.entry_price),
            f64s(|t| t.exit_price),
            f64s(|t| t.gross_pnl),
            f64s(|t| t.commission),
            f64s(|t| t.net_pnl),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|(_, t)| t.exit_reason.name()),
            )),
            Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|(_, t)| t.bars_held as i32),
            )),
            f64s(|t| t.mae),
            f64s(|t| t.mfe),
        ],
    )
}

/// Rows without a decision leave its columns (action, probabilities, mask,
/// target position, bracket) null.
fn equity_batch(runs: &[Run]) -> Result<RecordBatch> {
    let rows: Vec<_> = runs
        .iter()
        .flat_map(|r| r.rows().map(move |(e, d)| (r.name.as_str(), e, d)))
        .collect();
    let f64s = |f: fn(&EquityRow) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|(_, e, _)| f(e)),
        ))
    };
    let decided = |f: fn(&DecisionRow) -> Option<f64>| -> ArrayRef {
        Arc::new(Float64Array::from_iter(
            rows.iter().map(|(_, _, d)| d.and_then(f)),
        ))
    };
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(n, _, _)| *n),
        )),
        timestamps(rows.iter().map(|(_, e, _)| e.ts_ns)),
        f64s(|e| e.equity),
        f64s(|e| e.balance),
        Arc::new(Int8Array::from_iter_values(
            rows.iter().map(|(_, e, _)| e.position),
        )),
        Arc::new(UInt8Array::from_iter(
            rows.iter().map(|(_, _, d)| d.map(|d| d.action.code())),
        )),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|(_, _, d)| d.map(|d| d.action.name())),
        )),
    ];
    for a in Action::ALL {
        let i = a.code() as usize;
        columns.push(Arc::new(Float32Array::from_iter(rows.iter().map(
            |(_, _, d)| d.and_then(|d| (i < d.n_actions as usize).then_some(d.probs[i])),
        ))));
    }
    columns.extend([
        Arc::new(UInt8Array::from_iter(
            rows.iter().map(|(_, _, d)| d.map(|d| d.mask)),
        )) as ArrayRef,
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(_, e, _)| e.kind.name()),
        )),
        Arc::new(Int8Array::from_iter(
            rows.iter().map(|(_, _, d)| d.map(|d| d.target_position)),
        )),
        decided(|d| d.stop_price),
        decided(|d| d.target_price),
        f64s(|e| e.close),
        f64s(|e| e.atr),
    ]);
    batch(schema::equity(), columns)
}

fn summary_batch(summaries: &[Summary]) -> Result<RecordBatch> {
    let f64s = |f: fn(&Summary) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(summaries.iter().map(f)))
    };
    let opt = |f: fn(&Summary) -> Option<f64>| -> ArrayRef {
        Arc::new(Float64Array::from_iter(summaries.iter().map(f)))
    };
    let i64s = |f: &dyn Fn(&Summary) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(summaries.iter().map(f)))
    };
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            summaries.iter().map(|s| s.policy.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            summaries.iter().map(|s| s.kind.as_str()),
        )),
        i64s(&|s| s.trades),
        f64s(|s| s.win_rate),
        f64s(|s| s.net_pnl_usd),
        f64s(|s| s.gross_pnl_usd),
        f64s(|s| s.commission_usd),
        f64s(|s| s.max_drawdown_usd),
        opt(|s| s.profit_factor),
        opt(|s| s.avg_win_usd),
        opt(|s| s.avg_loss_usd),
        opt(|s| s.sharpe_daily),
        opt(|s| s.sortino_daily),
        f64s(|s| s.exposure),
        i64s(&|s| s.days),
        Arc::new(BooleanArray::from_iter(
            summaries.iter().map(|s| Some(s.drawdown_breach)),
        )),
    ];
    for a in Action::ALL {
        let i = a.code() as usize;
        columns.push(i64s(&move |s| s.actions[i]));
    }
    columns.push(Arc::new(BooleanArray::from_iter(
        summaries.iter().map(|s| Some(s.best)),
    )));
    columns.push(Arc::new(StringArray::from_iter_values(
        summaries.iter().map(|s| s.sample.as_str()),
    )));
    type Figure = fn(&Significance) -> Option<f64>;
    let figures: [Figure; 8] = [
        |g| Some(g.mean_daily_pnl_usd),
        |g| g.mean_daily_pnl_ci_usd.map(|c| c.0),
        |g| g.mean_daily_pnl_ci_usd.map(|c| c.1),
        |g| g.sharpe_ci.map(|c| c.0),
        |g| g.sharpe_ci.map(|c| c.1),
        |g| g.null_percentile,
        |g| g.null_p_value,
        |g| g.deflated_sharpe,
    ];
    for f in figures {
        columns.push(Arc::new(Float64Array::from_iter(
            summaries
                .iter()
                .map(|s| s.significance.as_ref().and_then(f)),
        )));
    }
    let counts: [fn(&Significance) -> usize; 2] = [|g| g.null_seeds, |g| g.trials];
    for f in counts {
        columns.push(Arc::new(Int64Array::from_iter(
            summaries
                .iter()
                .map(|s| s.significance.as_ref().map(|g| f(g) as i64)),
        )));
    }
    columns.push(Arc::new(BooleanArray::from_iter(
        summaries
            .iter()
            .map(|s| s.significance.as_ref().map(|g| g.edge_detected)),
    )));
    columns.push(Arc::new(StringArray::from_iter(
        summaries
            .iter()
            .map(|s| s.significance.as_ref().map(|g| g.verdict.as_str())),
    )));
    batch(schema::summary(), columns)
}
