//! What the workspace's tests share: where the repository and the real data
//! are, and the Python the interop tests run.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (this crate sits one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support lives in the workspace")
        .to_path_buf()
}

/// `../shared/data/real/<rel>`: the real market data beside the repository
/// (read-only; CI has it there too).
pub fn real_data(rel: &str) -> PathBuf {
    workspace_root().join("../shared/data/real").join(rel)
}

/// The Python of the tests' own virtual environment, `.venv-test`, made by
/// `scripts/setup-tests.sh` from nothing with pinned packages. Never the
/// `python3` on PATH: a package installed there by hand would hide a missing
/// install step. Panics, saying what to run, when the environment is missing.
pub fn python() -> PathBuf {
    let python = workspace_root().join(".venv-test/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run `bash scripts/setup-tests.sh` first (the README's test command does)",
        python.display()
    );
    python
}

/// A command running the tests' Python.
pub fn python_command() -> Command {
    Command::new(python())
}
