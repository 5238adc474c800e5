//! The on-device part: an exported generator in ONNX Runtime, shown through embedded-graphics on
//! a Linux framebuffer, SPI panel, PNG file or terminal, as a kiosk. No candle here.

pub mod ask;
pub mod bench;
pub mod canvas;
pub mod display;
pub mod error;
pub mod framebuffer;
pub mod http;
pub mod http_server;
pub mod keys;
pub mod kiosk;
pub mod latent;
pub mod latest_frame;
pub mod model;
pub mod model_watch;
pub mod png_sink;
pub mod render;
pub mod screen;
pub mod session;
pub mod soak;
pub mod spi;
pub mod terminal;
#[cfg(feature = "window")]
pub mod window;

pub use error::{EdgeError, Result};
