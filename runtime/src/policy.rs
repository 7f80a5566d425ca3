//! Being written: see the runtime issue.
