//! Safetensors files with the model config in `__metadata__`: both the training checkpoint
//! (G, D, optimizer state) and the inference generator file use this layout, so anything that
//! needs a generator can read either.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor};
use gan_contract::ModelInfo;
use safetensors::SafeTensors;

use crate::atomic::atomic_write;
use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::gan::{Generator, G_PREFIX};
use crate::params::Params;

/// The training checkpoint's file name inside a run directory.
pub const CHECKPOINT_FILE_NAME: &str = "checkpoint.safetensors";
/// Metadata key holding the full [`ModelConfig`] as JSON.
pub use gan_contract::keys::CONFIG as CONFIG_KEY;
/// Metadata key saying what the file is (`generator` or `checkpoint`).
pub use gan_contract::keys::KIND as KIND_KEY;
/// Prefix of the EMA copy of G's tensors in a training checkpoint (`ema.g.0.weight`).
pub const EMA_PREFIX: &str = "ema.";

/// Which copy of G to load from a checkpoint that also keeps an EMA of G's weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    /// The EMA copy when the file has one, else the trained weights: what inference uses.
    Inference,
    /// The weights the optimiser trained.
    Trained,
}

/// A safetensors file read whole: its metadata and tensors.
pub struct TensorFile {
    pub metadata: HashMap<String, String>,
    pub tensors: HashMap<String, Tensor>,
}

impl TensorFile {
    pub fn read(path: &Path, device: &Device) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            action: "read",
            source,
        })?;
        Self::parse(&bytes, path, device)
    }

    /// Parses safetensors bytes; `path` only names the file in errors.
    pub fn parse(bytes: &[u8], path: &Path, device: &Device) -> Result<Self> {
        let (_, header) =
            SafeTensors::read_metadata(bytes).map_err(|source| ModelError::NotSafetensors {
                path: path.to_path_buf(),
                source,
            })?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let tensors = candle_core::safetensors::load_buffer(bytes, device).map_err(|source| {
            ModelError::CorruptTensors {
                path: path.to_path_buf(),
                source,
            }
        })?;
        Ok(Self { metadata, tensors })
    }

    /// The model config stored in the metadata, validated.
    pub fn config(&self, path: &Path) -> Result<ModelConfig> {
        let text = self
            .metadata
            .get(CONFIG_KEY)
            .ok_or_else(|| ModelError::File {
                path: path.to_path_buf(),
                message:
                    "no model config in the safetensors metadata (not written by this toolkit?)"
                        .into(),
            })?;
        ModelConfig::from_json(text).map_err(|e| ModelError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}

/// Serialises tensors (sorted by name) and metadata, then replaces `path` atomically.
pub fn write_tensor_file<'a>(
    path: &Path,
    tensors: impl IntoIterator<Item = (String, &'a Tensor)>,
    metadata: BTreeMap<String, String>,
) -> Result<()> {
    let sorted: BTreeMap<String, &Tensor> = tensors.into_iter().collect();
    let bytes =
        safetensors::serialize(sorted, Some(metadata.into_iter().collect())).map_err(|e| {
            ModelError::File {
                path: path.to_path_buf(),
                message: format!("cannot serialise: {e}"),
            }
        })?;
    atomic_write(path, &bytes).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        action: "write",
        source,
    })
}

/// What the ONNX contract says about a model trained with `config`.
pub fn model_info(config: &ModelConfig, model_name: &str) -> Result<ModelInfo> {
    let image = config.image_shape()?;
    let d = &config.dataset;
    Ok(ModelInfo {
        format_version: Some(config.format_version),
        name: model_name.to_string(),
        architecture: config.architecture.name().to_string(),
        dataset: d.name.clone(),
        latent_dim: config.generator.latent_dim,
        class_names: d.class_names.clone(),
        attributes: d.attributes.clone(),
        channels: image[0],
        height: image[1],
        width: image[2],
        attribution: d.attribution.clone(),
    })
}

/// What the ONNX contract and the generator file carry about a model, as key/value pairs: the
/// contract's keys plus the full config.
pub fn contract_metadata(
    config: &ModelConfig,
    model_name: &str,
) -> Result<BTreeMap<String, String>> {
    let mut metadata = model_info(config, model_name)?.to_metadata();
    metadata.insert(CONFIG_KEY.into(), config.to_json());
    Ok(metadata)
}

/// A generator loaded from a generator file or a training checkpoint.
pub struct LoadedGenerator {
    pub config: ModelConfig,
    pub generator: Generator,
    pub metadata: HashMap<String, String>,
    /// The weights are the checkpoint's EMA copy.
    pub ema: bool,
}

/// Loads G's inference weights (the EMA copy of a checkpoint that has one).
pub fn load_generator(path: &Path, device: &Device) -> Result<LoadedGenerator> {
    load_generator_weights(path, device, Weights::Inference)
}

pub fn load_generator_weights(
    path: &Path,
    device: &Device,
    weights: Weights,
) -> Result<LoadedGenerator> {
    LoadedGenerator::from_file(TensorFile::read(path, device)?, path, weights)
}

impl LoadedGenerator {
    /// G from a parsed generator file or checkpoint; `path` only names the file in errors.
    pub fn from_file(file: TensorFile, path: &Path, weights: Weights) -> Result<Self> {
        let config = file.config(path)?;
        let ema =
            weights == Weights::Inference && file.tensors.keys().any(|k| k.starts_with(EMA_PREFIX));
        let params = if ema {
            Params::from_tensors(
                &config.generator.net,
                G_PREFIX,
                &strip_ema_prefix(&file.tensors),
            )
        } else {
            Params::from_tensors(&config.generator.net, G_PREFIX, &file.tensors)
        }
        .map_err(|e| ModelError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(LoadedGenerator {
            generator: Generator::new(config.generator.clone(), params),
            config,
            metadata: file.metadata,
            ema,
        })
    }
}

/// The EMA tensors of a checkpoint under their plain names (`ema.g.0.weight` → `g.0.weight`).
pub fn strip_ema_prefix(tensors: &HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    tensors
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(EMA_PREFIX)?.to_string(), v.clone())))
        .collect()
}

/// Writes the inference generator file: G's tensors plus the contract metadata.
pub fn save_generator(
    path: &Path,
    generator: &Generator,
    config: &ModelConfig,
    model_name: &str,
) -> Result<()> {
    let mut metadata = contract_metadata(config, model_name)?;
    metadata.insert(KIND_KEY.into(), gan_contract::KIND_GENERATOR.into());
    let tensors = generator.net.params.tensors().map(|(k, v)| (k.clone(), v));
    write_tensor_file(path, tensors, metadata)
}
