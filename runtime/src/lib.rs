//! nq-runtime: the one implementation of bar building, features, action masks,
//! fills and P&L. The trainer's environments, `nq-eval` and live execution all
//! call it, which is what keeps the live observation identical to the trained
//! one.
//!
//! `#![no_std]` with no `alloc`: nothing here can allocate. Storage is fixed
//! capacity (const generics, ring buffers) or owned by the caller. Math goes
//! through `libm`, so results do not depend on the platform's libm.
#![no_std]
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod bars;
pub mod calendar;
pub mod engine;
pub mod features;
pub mod mask;
pub mod policy;
pub mod position;
pub mod rng;
pub mod sim;
pub mod step;

pub use mask::ActionMask;
pub use position::PositionView;
