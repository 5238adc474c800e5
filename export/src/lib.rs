//! Exports trained generators: inference safetensors plus an ONNX graph (BatchNorm folded,
//! the ONNX contract of `gan_contract`), verified against candle with ONNX Runtime.

pub mod error;
pub mod fold;
pub mod graph;
pub mod macs;
pub mod onnx_proto;
pub mod verify;

use std::path::{Path, PathBuf};

use candle_core::Device;
use gan_models::checkpoint::CHECKPOINT_FILE_NAME;
use gan_models::{load_generator, LoadedGenerator};

pub use error::{ExportError, Result};

/// A run directory means its checkpoint; a file is taken as is (checkpoint or generator file).
pub fn resolve_checkpoint(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(CHECKPOINT_FILE_NAME)
    } else {
        path.to_path_buf()
    }
}

pub fn load(path: &Path) -> Result<LoadedGenerator> {
    let file = resolve_checkpoint(path);
    if !file.exists() {
        return Err(ExportError::File {
            path: file,
            message: "no such file".into(),
        });
    }
    Ok(load_generator(&file, &Device::Cpu)?)
}

/// Writes bytes atomically, naming the path on failure.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    gan_models::atomic::atomic_write(path, bytes).map_err(|source| ExportError::Write {
        path: path.to_path_buf(),
        source,
    })
}
