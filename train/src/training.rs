//! The adversarial loop and what it keeps: recipe, losses, Adam, the EMA of G, counter-based
//! randomness, checkpoints, metrics, sample grids, and the step benchmark.

pub mod bench;
pub mod checkpoint;
pub mod ema;
pub mod losses;
pub mod metrics;
pub mod optim;
pub mod recipe;
pub mod rng;
pub mod samples;
pub mod trainer;
