//! The contracts that the trainer (`nq-trainer`), the runtime (`nq-runtime`) and the
//! tools (`nq-tools`) share: instruments, actions, market records, the observation
//! layout, simulator settings and the checkpoint format.
//!
//! The core is `no_std` and allocation-free so that the runtime can use it on a
//! bare-metal target. The `std` feature adds the typed policy metadata that
//! round-trips through a safetensors string map; `arrow` adds the Arrow schemas
//! of the data and report tables.
#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![forbid(unsafe_code)]

pub mod action;
pub mod checkpoint;
pub mod hash;
pub mod instrument;
pub mod market;
pub mod obs;
pub mod session;
pub mod sim;

#[cfg(feature = "arrow")]
pub mod schema;

pub use action::{Action, ActionSet};
pub use instrument::{Instrument, InstrumentSpec};
pub use market::{Bar, Side, Tick};
pub use obs::{ObsLayout, OBS_LAYOUT_V1};
pub use session::SessionHours;
pub use sim::SimConfig;
