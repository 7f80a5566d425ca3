//! Reading the Parquet reports the binaries write, for the CLI tests.
#![allow(dead_code)]

use std::path::Path;

use arrow_array::{Array, RecordBatch, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// The whole file as one batch.
pub fn read_batch(path: &Path) -> RecordBatch {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

/// Column `name` as its concrete array type.
pub fn column<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> &'a T {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref()
        .unwrap_or_else(|| panic!("column {name} has another type"))
}

/// The `kind`s of `equity.parquet` rows at bar closes without a decision
/// (their decision columns are null).
pub const NO_DECISION: [&str; 2] = ["warmup", "outside_session"];

/// The decision rows of an `equity.parquet` batch: their `kind` is a
/// decision's, and their decision columns are all there.
pub fn decision_rows(equity: &RecordBatch) -> Vec<usize> {
    let kind = column::<StringArray>(equity, "kind");
    let rows: Vec<usize> = (0..equity.num_rows())
        .filter(|&i| !NO_DECISION.contains(&kind.value(i)))
        .collect();
    for name in ["action", "action_name", "mask", "target_position"] {
        let c = equity.column_by_name(name).unwrap();
        for &i in &rows {
            assert!(c.is_valid(i), "row {i} ({}): {name} null", kind.value(i));
        }
    }
    rows
}
