//! One ONNX Runtime session around an exported generator, checked against the contract when it
//! loads. `export --verify`, `train eval` and the edge runtime all run models through it.

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::TensorRef;

use crate::error::{ContractError, Result};
use crate::info::ModelInfo;
use crate::names::{INPUT_ATTRIBUTES, INPUT_LABEL, INPUT_Z, OUTPUT_IMAGE};

/// What a model is asked for besides its latents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conditioning {
    /// Only `z`.
    None,
    /// `label` int64 `[N]`.
    Label,
    /// `attributes` int64 `[N, A]`, with this A.
    Attributes(usize),
}

impl Conditioning {
    /// Condition values per image: 0, 1 or A.
    pub fn per_image(self) -> usize {
        match self {
            Conditioning::None => 0,
            Conditioning::Label => 1,
            Conditioning::Attributes(a) => a,
        }
    }
}

/// What the graph itself declares: enough to run it, with or without metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    pub latent_dim: usize,
    /// The graph's inputs besides `z`.
    pub conditioning: Conditioning,
    /// Per-image `[C, H, W]` when the output's dimensions are static.
    pub image: Option<[usize; 3]>,
}

pub struct OnnxGenerator {
    pub path: PathBuf,
    pub signature: Signature,
    session: Session,
}

impl OnnxGenerator {
    /// Reads and loads `path` (ONNX Runtime from `ort_lib` or the usual places) with `threads`
    /// intra-op threads (default: ONNX Runtime's), and checks its inputs and output.
    pub fn load(path: &Path, ort_lib: Option<&Path>, threads: Option<usize>) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| ContractError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut generator =
            Self::from_bytes(&bytes, ort_lib, threads).map_err(|e| e.in_file(path))?;
        generator.path = path.to_path_buf();
        Ok(generator)
    }

    /// [`Self::load`] for a model already in memory (`path` is then empty).
    pub fn from_bytes(
        bytes: &[u8],
        ort_lib: Option<&Path>,
        threads: Option<usize>,
    ) -> Result<Self> {
        let rt = gan_ort_setup::init(ort_lib)?;
        let mut builder = Session::builder(&rt.environment)?;
        if let Some(n) = threads {
            builder = builder.with_intra_threads(n).map_err(ort::Error::from)?;
        }
        let session = builder
            .commit_from_memory(bytes)
            .map_err(|e| ContractError::Signature(format!("not a loadable ONNX model: {e}")))?;
        let signature = signature(&session)?;
        Ok(Self {
            path: PathBuf::new(),
            signature,
            session,
        })
    }

    /// The contract's metadata, checked against what the graph declares.
    pub fn info(&self) -> Result<ModelInfo> {
        let meta = self.session.metadata()?;
        let info = ModelInfo::from_metadata(|key| meta.custom(key))?;
        let s = &self.signature;
        let labelled = s.conditioning == Conditioning::Label;
        if labelled != (info.num_classes() > 0) {
            return Err(ContractError::Signature(format!(
                "metadata names {} classes but the graph {} a `{INPUT_LABEL}` input",
                info.num_classes(),
                if labelled { "has" } else { "lacks" }
            )));
        }
        let columns = match s.conditioning {
            Conditioning::Attributes(a) => a,
            _ => 0,
        };
        if columns != info.attributes.len() {
            return Err(ContractError::Signature(format!(
                "metadata names {} attributes but the graph's `{INPUT_ATTRIBUTES}` input has {columns} columns",
                info.attributes.len()
            )));
        }
        if s.latent_dim != info.latent_dim {
            return Err(ContractError::Signature(format!(
                "metadata says latent_dim {} but input `{INPUT_Z}` takes {}",
                info.latent_dim, s.latent_dim
            )));
        }
        if s.image
            .is_some_and(|i| i != [info.channels, info.height, info.width])
        {
            return Err(ContractError::Signature(format!(
                "metadata says {}×{}×{} images but output `{OUTPUT_IMAGE}` is {:?}",
                info.channels, info.height, info.width, s.image
            )));
        }
        Ok(info)
    }

    /// Images, flat NCHW, for latents `z` (`n × latent_dim`) and the conditions the model takes:
    /// `n` labels, or `n × A` attribute classes (row-major), or none.
    pub fn generate(&mut self, z: &[f32], conditions: &[i64]) -> Result<Vec<f32>> {
        let latent = self.signature.latent_dim;
        let n = z.len() / latent;
        if n == 0 || z.len() != n * latent {
            return Err(ContractError::Request(format!(
                "{} latent values are not a whole number of latents of size {latent}",
                z.len()
            )));
        }
        let z_in = TensorRef::from_array_view(([n, latent], z))?;
        let per = self.signature.conditioning.per_image();
        if conditions.len() != n * per {
            return Err(ContractError::Request(format!(
                "{n} latents need {} condition values ({per} each), got {}",
                n * per,
                conditions.len()
            )));
        }
        let outputs = match self.signature.conditioning {
            Conditioning::None => self.session.run(ort::inputs![INPUT_Z => z_in])?,
            Conditioning::Label => {
                let l_in = TensorRef::from_array_view(([n], conditions))?;
                self.session
                    .run(ort::inputs![INPUT_Z => z_in, INPUT_LABEL => l_in])?
            }
            Conditioning::Attributes(a) => {
                let a_in = TensorRef::from_array_view(([n, a], conditions))?;
                self.session
                    .run(ort::inputs![INPUT_Z => z_in, INPUT_ATTRIBUTES => a_in])?
            }
        };
        let (_, data) = outputs[OUTPUT_IMAGE].try_extract_tensor::<f32>()?;
        Ok(data.to_vec())
    }
}

/// The graph's inputs must be `z`, or `z` and `label`, or `z` and `attributes`; its output
/// must include `image`.
fn signature(session: &Session) -> Result<Signature> {
    let inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
    let conditioning = match inputs.as_slice() {
        [z] if *z == INPUT_Z => Conditioning::None,
        [z, l] if *z == INPUT_Z && *l == INPUT_LABEL => Conditioning::Label,
        [z, a] if *z == INPUT_Z && *a == INPUT_ATTRIBUTES => {
            let columns = session.inputs()[1]
                .dtype()
                .tensor_shape()
                .filter(|s| s.len() == 2 && s[1] > 0)
                .map(|s| s[1] as usize)
                .ok_or_else(|| {
                    ContractError::Signature(format!(
                        "input `{INPUT_ATTRIBUTES}` is not [N, A] with a static A"
                    ))
                })?;
            Conditioning::Attributes(columns)
        }
        _ => {
            return Err(ContractError::Signature(format!(
                "inputs are {inputs:?}, the contract needs [\"{INPUT_Z}\"], \
                 [\"{INPUT_Z}\", \"{INPUT_LABEL}\"] or [\"{INPUT_Z}\", \"{INPUT_ATTRIBUTES}\"]"
            )))
        }
    };
    let latent_dim = session.inputs()[0]
        .dtype()
        .tensor_shape()
        .filter(|s| s.len() == 2)
        .map(|s| s[1])
        .filter(|&d| d > 0)
        .ok_or_else(|| {
            ContractError::Signature(format!("input `{INPUT_Z}` is not [N, latent_dim]"))
        })? as usize;
    let output = session
        .outputs()
        .iter()
        .find(|o| o.name() == OUTPUT_IMAGE)
        .ok_or_else(|| ContractError::Signature(format!("no output named `{OUTPUT_IMAGE}`")))?;
    let image = output
        .dtype()
        .tensor_shape()
        .filter(|s| s.len() == 4 && s[1..].iter().all(|&d| d > 0))
        .map(|s| [s[1] as usize, s[2] as usize, s[3] as usize]);
    Ok(Signature {
        latent_dim,
        conditioning,
        image,
    })
}
