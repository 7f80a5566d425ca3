//! nq-tools
