//! GAN architectures as data, their candle modules, the fast CPU kernels they train with, and
//! the safetensors files that carry them.

pub use gan_grid::atomic;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod gan;
pub mod kernels;
pub mod labels;
pub mod net;
pub mod params;

pub use checkpoint::{
    load_generator, load_generator_weights, save_generator, LoadedGenerator, TensorFile, Weights,
};
pub use config::{Architecture, DatasetInfo, Layer, ModelConfig, NetConfig};
pub use error::{ModelError, Result};
pub use gan::{Discriminator, Generator};
pub use params::Params;
