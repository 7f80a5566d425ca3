//! Standard output for the command-line tools when its reader may go away
//! first, as in `nq-eval ... | head -3`: `print!` would panic on the broken
//! pipe. A closed stdout is how such a pipeline ends, not a failure, so the
//! tools stop printing and finish their real work (report files, output
//! Parquet) instead.

use std::io::Write;
use std::path::Path;

use crate::{Error, Result};

/// Prints through a locked, flushed stdout; once the reader has gone, later
/// prints do nothing.
#[derive(Debug, Default)]
pub struct Stdout {
    closed: bool,
}

impl Stdout {
    pub fn new() -> Stdout {
        Stdout::default()
    }

    /// Writes `text` and flushes it. A broken pipe marks stdout closed and is
    /// not an error; any other write failure is (naming `<stdout>`).
    pub fn print(&mut self, text: &str) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        let written = out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| Error::io(Path::new("<stdout>"), e));
        match written {
            Err(e) if e.is_broken_pipe() => {
                self.closed = true;
                Ok(())
            }
            other => other,
        }
    }

    /// [`Stdout::print`] with a line end.
    pub fn println(&mut self, line: &str) -> Result<()> {
        self.print(&format!("{line}\n"))
    }
}
