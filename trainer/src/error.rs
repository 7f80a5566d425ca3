//! User errors (bad flag, file, config or checkpoint: exit code 2) as opposed
//! to bugs (exit code 1).

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserError(pub String);

impl UserError {
    pub fn new(message: impl Into<String>) -> UserError {
        UserError(message.into())
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UserError {}

impl From<nq_env::EnvError> for UserError {
    fn from(e: nq_env::EnvError) -> Self {
        UserError(e.0)
    }
}

/// An I/O failure on a path the run itself chose (a file in the run folder,
/// a checkpoint it just wrote): not the user's doing, so exit code 1, but
/// with the path and what was being done so it can be looked into.
#[derive(Debug)]
pub struct IoError {
    /// "writing", "reading", "creating", ...
    pub doing: &'static str,
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.doing, self.path.display(), self.source)
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Attaches the path and the operation to a `std::io::Result`.
pub trait IoContext<T> {
    fn doing(self, doing: &'static str, path: &Path) -> Result<T, IoError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn doing(self, doing: &'static str, path: &Path) -> Result<T, IoError> {
        self.map_err(|source| IoError {
            doing,
            path: path.to_path_buf(),
            source,
        })
    }
}
