//! The runtime's generator ([`nq_runtime::rng::Rng`], xoshiro256**), the one
//! the whole project draws from; its 256-bit state is saved with the
//! trainer's state, so a resumed run continues every stream exactly.

pub use nq_runtime::rng::Rng;
