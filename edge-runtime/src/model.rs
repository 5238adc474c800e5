//! A generator in ONNX Runtime, described by the contract's metadata (ARCHITECTURE.md): latent
//! size, classes and image shape come from the model file, never from guesses.

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::TensorRef;

use crate::error::{EdgeError, Result};

/// Largest batch one request may ask for.
pub const MAX_BATCH: usize = 256;

#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub name: String,
    pub dataset: String,
    pub latent_dim: usize,
    pub class_names: Vec<String>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub attribution: String,
}

impl ModelInfo {
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// A class by index, or by name ("7", "seven").
    pub fn class_index(&self, label: &str) -> Result<usize> {
        if self.class_names.is_empty() {
            return Err(EdgeError::Request(format!(
                "model `{}` is unconditional: it takes no label",
                self.name
            )));
        }
        self.class_names
            .iter()
            .position(|n| n == label)
            .or_else(|| {
                label
                    .parse::<usize>()
                    .ok()
                    .filter(|&i| i < self.num_classes())
            })
            .ok_or_else(|| {
                EdgeError::Request(format!(
                    "unknown label `{label}`: this model knows {}",
                    self.class_names.join(", ")
                ))
            })
    }
}

pub struct Generator {
    pub info: ModelInfo,
    pub path: PathBuf,
    session: Session,
}

impl Generator {
    /// Loads `path`, checking it follows the contract (inputs `z` [+ `label`], output `image`).
    pub fn load(path: &Path, ort_lib: Option<&Path>, threads: Option<usize>) -> Result<Self> {
        let bad = |message: String| EdgeError::Model {
            path: path.to_path_buf(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read model: {e}")))?;
        let rt = gan_ort::init(ort_lib)?;
        let threads =
            threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let session = Session::builder(&rt.environment)
            .map_err(|e| bad(e.to_string()))?
            .with_intra_threads(threads)
            .map_err(|e| bad(e.to_string()))?
            .commit_from_memory(&bytes)
            .map_err(|e| bad(format!("not a loadable ONNX model: {e}")))?;
        let info = read_info(&session).map_err(bad)?;
        let inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        let expected: &[&str] = if info.num_classes() > 0 {
            &["z", "label"]
        } else {
            &["z"]
        };
        if inputs != expected {
            return Err(bad(format!(
                "inputs are {inputs:?}, the contract needs {expected:?} for a model with {} classes",
                info.num_classes()
            )));
        }
        if !session.outputs().iter().any(|o| o.name() == "image") {
            return Err(bad("no output named `image`".into()));
        }
        Ok(Self {
            info,
            path: path.to_path_buf(),
            session,
        })
    }

    /// Images `[n, C, H, W]` in [-1, 1] for latents `z` (`n × latent`) and labels (conditional).
    pub fn generate(&mut self, z: &[f32], labels: &[i64]) -> Result<Vec<f32>> {
        let latent = self.info.latent_dim;
        let n = z.len() / latent;
        if n == 0 || n > MAX_BATCH || z.len() != n * latent {
            return Err(EdgeError::Request(format!(
                "batch must be 1..={MAX_BATCH} latents of size {latent}"
            )));
        }
        let runtime = |e: ort::Error| EdgeError::Runtime(e.to_string());
        let z_in = TensorRef::from_array_view(([n, latent], z)).map_err(runtime)?;
        let outputs = if self.info.num_classes() > 0 {
            if labels.len() != n
                || labels
                    .iter()
                    .any(|&l| l < 0 || l as usize >= self.info.num_classes())
            {
                return Err(EdgeError::Request(format!(
                    "need {n} labels in 0..{}",
                    self.info.num_classes()
                )));
            }
            let l_in = TensorRef::from_array_view(([n], labels)).map_err(runtime)?;
            self.session.run(ort::inputs!["z" => z_in, "label" => l_in])
        } else {
            self.session.run(ort::inputs!["z" => z_in])
        }
        .map_err(runtime)?;
        let (_, data) = outputs["image"]
            .try_extract_tensor::<f32>()
            .map_err(runtime)?;
        if data.len() != n * self.info.image_len() {
            return Err(EdgeError::Runtime(format!(
                "model returned {} values, expected {} for {n} images",
                data.len(),
                n * self.info.image_len()
            )));
        }
        Ok(data.to_vec())
    }
}

fn read_info(session: &Session) -> std::result::Result<ModelInfo, String> {
    let meta = session.metadata().map_err(|e| e.to_string())?;
    ModelInfo::from_metadata(|key| meta.custom(key))
}

impl ModelInfo {
    /// The contract's metadata, checked: `custom` looks up one key of the model's custom metadata.
    pub fn from_metadata(
        custom: impl Fn(&str) -> Option<String>,
    ) -> std::result::Result<Self, String> {
        let get = |key: &str| -> std::result::Result<String, String> {
            custom(key).ok_or_else(|| {
                format!("metadata lacks '{key}' (not exported by this toolkit's 'export'?)")
            })
        };
        let num = |key: &str| -> std::result::Result<usize, String> {
            let v = get(key)?;
            v.parse::<usize>()
                .ok()
                .filter(|&n| n > 0 && n <= 4096)
                .ok_or_else(|| format!("metadata `{key}` = `{v}` is not a sensible size"))
        };
        let class_names: Vec<String> = serde_json::from_str(&get("class_names")?)
            .map_err(|e| format!("metadata `class_names` is not a JSON list of strings: {e}"))?;
        let num_classes: usize = get("num_classes")?
            .parse()
            .map_err(|_| "metadata `num_classes` is not a number".to_string())?;
        if num_classes != class_names.len() {
            return Err(format!(
                "metadata says {num_classes} classes but names {}",
                class_names.len()
            ));
        }
        let channels = num("channels")?;
        if channels != 1 && channels != 3 {
            return Err(format!(
                "{channels} channels: only gray or RGB images can be shown"
            ));
        }
        Ok(ModelInfo {
            name: get("model_name")?,
            dataset: get("dataset").unwrap_or_default(),
            latent_dim: num("latent_dim")?,
            class_names,
            channels,
            height: num("height")?,
            width: num("width")?,
            attribution: get("attribution").unwrap_or_default(),
        })
    }
}
