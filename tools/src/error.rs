//! One error type for the whole crate, so that every command can turn any
//! failure into a message and an exit code (SPEC section 11: user errors exit 2,
//! bugs exit 1).

use std::fmt;
use std::path::{Path, PathBuf};

/// Everything that can go wrong while reading, converting or writing market data.
///
/// Rows are 0-based indices into the file (as `df.iloc[row]` in pandas; counted
/// across row groups); text lines are 1-based line numbers (as an editor shows).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value in one cell is unusable (NaN price, negative size, time going
    /// backwards, ...).
    #[error("{}: row {row}, column `{column}`: {problem}", file.display())]
    BadValue {
        file: PathBuf,
        row: u64,
        column: String,
        problem: String,
    },
    /// The file as a whole is unusable: a column is missing or has a type that
    /// cannot hold what it should, or the file is not Parquet at all.
    #[error("{}: {}{problem}", file.display(), column_prefix(column))]
    BadFile {
        file: PathBuf,
        column: Option<String>,
        problem: String,
    },
    /// A text line that the chosen layout cannot read.
    #[error("{}: line {line}: {problem}", file.display())]
    BadLine {
        file: PathBuf,
        line: u64,
        problem: String,
    },
    /// Reading or writing a file failed at the operating-system level.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A bad flag or combination of arguments.
    #[error("{0}")]
    Usage(String),
    /// A broken invariant inside nq-tools: a bug, not the user's fault.
    #[error("internal error (please report): {0}")]
    Internal(String),
}

fn column_prefix(column: &Option<String>) -> ColumnPrefix<'_> {
    ColumnPrefix(column.as_deref())
}

struct ColumnPrefix<'a>(Option<&'a str>);

impl fmt::Display for ColumnPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(c) => write!(f, "column `{c}`: "),
            None => Ok(()),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The process exit code for this error: 1 for bugs, 2 for everything the
    /// user can fix.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Internal(_) => 1,
            _ => 2,
        }
    }

    /// A write to a pipe whose reader has gone (`| head`): how a pipeline
    /// ends, which a command-line tool treats as a quiet stop, not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }

    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub fn bad_file(
        file: impl AsRef<Path>,
        column: Option<&str>,
        problem: impl Into<String>,
    ) -> Error {
        Error::BadFile {
            file: file.as_ref().to_path_buf(),
            column: column.map(str::to_owned),
            problem: problem.into(),
        }
    }

    pub fn bad_value(
        file: impl AsRef<Path>,
        row: u64,
        column: &str,
        problem: impl Into<String>,
    ) -> Error {
        Error::BadValue {
            file: file.as_ref().to_path_buf(),
            row,
            column: column.to_owned(),
            problem: problem.into(),
        }
    }

    pub fn bad_line(file: impl AsRef<Path>, line: u64, problem: impl Into<String>) -> Error {
        Error::BadLine {
            file: file.as_ref().to_path_buf(),
            line,
            problem: problem.into(),
        }
    }
}
