//! Training GANs with candle: datasets, the adversarial loop, checkpoints, samples and metrics.

pub mod bench;
pub mod checkpoint;
pub mod dataset;
pub mod error;
pub mod folder;
pub mod losses;
pub mod metrics;
pub mod mnist;
pub mod optim;
pub mod rng;
pub mod samples;
pub mod trainer;

pub use error::{Result, TrainError};
