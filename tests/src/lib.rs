//! Cross-crate integration tests live in tests/tests/: the guarantees that
//! only hold across crates (the live observation equals the trained one).
