//! Training GANs with candle, in three parts that data flows through one way: datasets in,
//! the adversarial loop and its checkpoints, and the evaluation of what a run made.

pub mod architecture;
pub mod data;
pub mod error;
pub mod evaluation;
pub mod preset;
pub mod training;

pub use error::{Result, TrainError};
