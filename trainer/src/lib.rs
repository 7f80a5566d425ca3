//! nq-trainer: filled by the trainer issue.
