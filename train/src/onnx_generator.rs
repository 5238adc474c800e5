//! A generator in ONNX Runtime, so `train eval` scores exported models (this project's or the
//! PyTorch reference's) exactly as they ship. Only the contract's inputs are assumed: `z`
//! `[N, latent]` f32 and, for conditional models, `label` `[N]` int64.

use std::path::Path;

use ort::session::Session;
use ort::value::TensorRef;

use crate::error::{Result, TrainError};

pub struct OnnxGenerator {
    session: Session,
    pub latent_dim: usize,
    pub conditional: bool,
    output: String,
    image: Option<[usize; 3]>,
}

impl OnnxGenerator {
    pub fn open(path: &Path, ort_lib: Option<&Path>) -> Result<Self> {
        let bad = |m: String| TrainError::data(path, m);
        let rt = gan_ort::init(ort_lib).map_err(|e| bad(e.to_string()))?;
        let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        let session = Session::builder(&rt.environment)
            .map_err(|e| bad(e.to_string()))?
            .commit_from_memory(&bytes)
            .map_err(|e| bad(format!("not a loadable ONNX model: {e}")))?;
        let z = session
            .inputs()
            .iter()
            .find(|i| i.name() == "z")
            .ok_or_else(|| bad("no input named `z`".into()))?;
        let latent_dim = z
            .dtype()
            .tensor_shape()
            .and_then(|s| s.last().copied())
            .filter(|&d| d > 0)
            .ok_or_else(|| bad("input `z` has no fixed latent size".into()))?
            as usize;
        let conditional = session.inputs().iter().any(|i| i.name() == "label");
        let first = session
            .outputs()
            .first()
            .ok_or_else(|| bad("the model has no output".into()))?;
        let output = first.name().to_string();
        let image = first
            .dtype()
            .tensor_shape()
            .filter(|s| s.len() == 4 && s[1..].iter().all(|&d| d > 0))
            .map(|s| [s[1] as usize, s[2] as usize, s[3] as usize]);
        Ok(Self {
            session,
            latent_dim,
            conditional,
            output,
            image,
        })
    }

    /// Per-image `[C, H, W]`, from the output's static dimensions.
    pub fn image_shape(&self) -> Result<[usize; 3]> {
        self.image.ok_or_else(|| {
            TrainError::Option("the model's output has no static [N, C, H, W] shape".into())
        })
    }

    /// Images for latents `z` (`n × latent`) and, when conditional, `labels`, as flat NCHW f32.
    pub fn generate(&mut self, z: &[f32], labels: &[u32]) -> Result<Vec<f32>> {
        let n = z.len() / self.latent_dim;
        let runtime = |e: ort::Error| TrainError::Option(format!("ONNX Runtime: {e}"));
        let z_in = TensorRef::from_array_view(([n, self.latent_dim], z)).map_err(runtime)?;
        let outputs = if self.conditional {
            let labels: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
            let l_in = TensorRef::from_array_view(([n], labels.as_slice())).map_err(runtime)?;
            self.session.run(ort::inputs!["z" => z_in, "label" => l_in])
        } else {
            self.session.run(ort::inputs!["z" => z_in])
        }
        .map_err(runtime)?;
        let (_, data) = outputs[self.output.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(runtime)?;
        Ok(data.to_vec())
    }
}
