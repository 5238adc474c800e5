//! Training GANs with candle: datasets, the adversarial loop, checkpoints, samples and metrics.

pub mod augment;
pub mod bench;
pub mod checkpoint;
pub mod dataset;
pub mod diversity;
pub mod ema;
pub mod error;
pub mod eval;
pub mod fid;
pub mod folder;
pub mod judge;
pub mod losses;
pub mod metrics;
pub mod mnist;
pub mod onnx_generator;
pub mod optim;
pub mod recipe;
pub mod rng;
pub mod samples;
pub mod swd;
pub mod trainer;

pub use error::{Result, TrainError};
