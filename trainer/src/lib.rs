//! nq-trainer: PPO (burn) for the nq trading policies, SPEC sections 7 and 8.
//!
//! The environments step the runtime's simulator over the runtime's features
//! and masks; nothing here recomputes bars, features, fills or P&L.

pub mod checkpoint;
pub mod config;
pub mod error;
pub mod gae;
pub mod net;
pub mod norm;
pub mod ppo;
pub mod rng;

pub use config::TrainConfig;
pub use error::UserError;
