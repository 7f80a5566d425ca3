//! nq-trainer: PPO (burn) for the nq trading policies, SPEC sections 7 and 8.
//!
//! The environments step the runtime's simulator over the runtime's features
//! and masks; nothing here recomputes bars, features, fills or P&L.

pub mod checkpoint;
pub mod config;
pub mod curriculum;
pub mod data;
pub mod device_check;
/// The environments live in their own crate (`nq-env`), shared with the
/// Python package; the trainer steps them.
pub mod env {
    pub use nq_env::*;
}
pub mod error;
pub mod eval;
pub mod gae;
pub mod layer;
pub mod monitor;
pub mod net;
pub mod norm;
pub mod ppo;
pub mod rng;
pub mod train;

pub use config::TrainConfig;
pub use error::{IoError, UserError};

/// The CPU training backend: burn-ndarray with autodiff.
pub type CpuBackend = burn::backend::Autodiff<burn::backend::NdArray<f32>>;

/// The CUDA training backend: burn-cuda with its fusion of element-wise
/// operations.
#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Autodiff<burn::backend::Cuda<f32>>;

/// burn-cuda without the fusion layer: slower, and the fallback when the
/// fused backend fails the [`device_check`].
#[cfg(feature = "cuda")]
pub type CudaUnfusedBackend =
    burn::backend::Autodiff<burn_cubecl::CubeBackend<cubecl::cuda::CudaRuntime, f32, i32, u8>>;
