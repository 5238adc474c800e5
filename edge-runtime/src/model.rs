//! The generator the device runs: the contract's ONNX Runtime wrapper plus the model's checked
//! metadata, so latent size, classes and image shape come from the model file, never guesses.

use std::path::{Path, PathBuf};

pub use gan_contract::ModelInfo;
use gan_contract::OnnxGenerator;

use crate::error::{EdgeError, Result};

/// Largest batch one request may ask for.
pub const MAX_BATCH: usize = 256;

pub struct Generator {
    pub info: ModelInfo,
    pub path: PathBuf,
    onnx: OnnxGenerator,
}

impl Generator {
    /// Loads `path` and checks it follows the contract; `threads` intra-op threads (default:
    /// all cores).
    pub fn load(path: &Path, ort_lib: Option<&Path>, threads: Option<usize>) -> Result<Self> {
        let threads =
            threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let onnx = OnnxGenerator::load(path, ort_lib, Some(threads))?;
        let info = onnx.info().map_err(|e| e.in_file(path))?;
        Ok(Self {
            info,
            path: path.to_path_buf(),
            onnx,
        })
    }

    /// The class count of each condition value an image takes: `[classes]`, the attributes'
    /// counts, or none.
    fn condition_classes(&self) -> Vec<usize> {
        match self.info.num_classes() {
            0 => self
                .info
                .attributes
                .iter()
                .map(|a| a.classes.len())
                .collect(),
            classes => vec![classes],
        }
    }

    /// Images `[n, C, H, W]` in [-1, 1] for latents `z` (`n × latent`) and the conditions the
    /// model takes (`n` labels, or `n` rows of attribute classes; see [`crate::ask::Ask`]).
    pub fn generate(&mut self, z: &[f32], conditions: &[i64]) -> Result<Vec<f32>> {
        let latent = self.info.latent_dim;
        let n = z.len() / latent;
        if n == 0 || n > MAX_BATCH || z.len() != n * latent {
            return Err(EdgeError::Request(format!(
                "batch must be 1..={MAX_BATCH} latents of size {latent}"
            )));
        }
        let classes = self.condition_classes();
        let in_range = conditions
            .iter()
            .enumerate()
            .all(|(i, &c)| c >= 0 && (c as usize) < classes[i % classes.len()]);
        if conditions.len() != n * classes.len() || !in_range {
            return Err(EdgeError::Request(format!(
                "need {n} rows of condition values in 0..{classes:?}"
            )));
        }
        let data = self.onnx.generate(z, conditions)?;
        if data.len() != n * self.info.image_len() {
            return Err(EdgeError::Runtime(format!(
                "model returned {} values, expected {} for {n} images",
                data.len(),
                n * self.info.image_len()
            )));
        }
        Ok(data)
    }
}
