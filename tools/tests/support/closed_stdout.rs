//! Running a binary as `... | head` does once `head` has gone: every write to
//! stdout fails with a broken pipe (the reader is closed before the start,
//! so the outcome does not depend on timing).
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// `cmd` with a closed stdout and `stdin` (if any) on its stdin; stderr kept.
pub fn run_with_closed_stdout(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(bytes) = stdin {
        let mut input = child.stdin.take().unwrap();
        // The process may stop reading once it cannot write: not a failure.
        let _ = input.write_all(bytes);
    }
    child.wait_with_output().unwrap()
}

/// Ended quietly: exit 0, and no panic or internal-error message.
pub fn assert_quiet_success(out: &Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{what}: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("internal error") && !err.contains("error:"),
        "{what}: {err}"
    );
}
