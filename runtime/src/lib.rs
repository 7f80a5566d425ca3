#![no_std]
//! nq-runtime: filled by the runtime issue.
