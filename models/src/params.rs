//! Named tensors of a network: trainable `Var`s and non-trainable buffers, in a fixed order so
//! initialisation, optimisers and checkpoints are deterministic.

use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Device, Tensor, Var};
use rand::Rng;
use rand_distr::{Distribution, Normal};

use crate::config::{Layer, NetConfig, SN_U};
use crate::error::{ModelError, Result};

pub struct Params {
    trainable: BTreeMap<String, Var>,
    buffers: BTreeMap<String, Var>,
}

/// The name of a layer's tensor inside a network's namespace.
pub fn tensor_name(prefix: &str, layer: usize, name: &str) -> String {
    format!("{prefix}.{layer}.{name}")
}

impl Params {
    /// DCGAN initialisation: weights N(0, 0.02), BatchNorm gamma N(1, 0.02), biases 0.
    pub fn init(
        net: &NetConfig,
        prefix: &str,
        rng: &mut impl Rng,
        device: &Device,
    ) -> Result<Self> {
        let mut values = HashMap::new();
        for (i, layer) in net.layers.iter().enumerate() {
            let is_bn = matches!(layer, Layer::BatchNorm2d { .. });
            for (name, shape) in layer.parameters().into_iter().chain(net.buffers(i)) {
                let n: usize = shape.iter().product();
                let data: Vec<f32> = match (name, is_bn) {
                    // Weights and label embeddings; the spectral-norm vector gets a random
                    // start too (only its direction matters to the power iteration).
                    ("weight", false) | ("embed", _) | (SN_U, _) => sample(rng, 0.0, n),
                    ("weight", true) => sample(rng, 1.0, n),
                    ("running_var", _) => vec![1.0; n],
                    _ => vec![0.0; n],
                };
                let t = Tensor::from_vec(data, shape, device)?;
                values.insert(tensor_name(prefix, i, name), t);
            }
        }
        Self::from_tensors(net, prefix, &values)
    }

    /// Takes the network's tensors from `values`, checking names, shapes and finiteness.
    pub fn from_tensors(
        net: &NetConfig,
        prefix: &str,
        values: &HashMap<String, Tensor>,
    ) -> Result<Self> {
        let mut trainable = BTreeMap::new();
        let mut buffers = BTreeMap::new();
        for (i, layer) in net.layers.iter().enumerate() {
            for (is_buffer, list) in [(false, layer.parameters()), (true, net.buffers(i))] {
                for (name, shape) in list {
                    let full = tensor_name(prefix, i, name);
                    let t = values
                        .get(&full)
                        .ok_or_else(|| ModelError::MissingTensor(full.clone()))?;
                    if t.dims() != shape.as_slice() {
                        return Err(ModelError::ShapeMismatch {
                            name: full,
                            expected: shape,
                            found: t.dims().to_vec(),
                        });
                    }
                    let t = t.to_dtype(DType::F32)?;
                    if !is_finite(&t)? {
                        return Err(ModelError::NonFinite(full));
                    }
                    let var = Var::from_tensor(&t)?;
                    if is_buffer {
                        buffers.insert(full, var);
                    } else {
                        trainable.insert(full, var);
                    }
                }
            }
        }
        Ok(Self { trainable, buffers })
    }

    pub fn trainable(&self) -> &BTreeMap<String, Var> {
        &self.trainable
    }

    /// Every tensor, trainable and buffer, by name.
    pub fn tensors(&self) -> impl Iterator<Item = (&String, &Tensor)> {
        self.vars().map(|(k, v)| (k, v.as_tensor()))
    }

    /// Every variable, trainable and buffer, by name.
    pub fn vars(&self) -> impl Iterator<Item = (&String, &Var)> {
        self.trainable.iter().chain(self.buffers.iter())
    }

    /// An independent copy (new storage), e.g. to start an EMA of the weights.
    pub fn deep_copy(&self) -> Result<Self> {
        let copy = |m: &BTreeMap<String, Var>| -> Result<BTreeMap<String, Var>> {
            m.iter()
                .map(|(k, v)| Ok((k.clone(), Var::from_tensor(&v.as_tensor().copy()?)?)))
                .collect()
        };
        Ok(Self {
            trainable: copy(&self.trainable)?,
            buffers: copy(&self.buffers)?,
        })
    }

    pub fn get(&self, name: &str) -> Result<&Var> {
        self.trainable
            .get(name)
            .or_else(|| self.buffers.get(name))
            .ok_or_else(|| ModelError::MissingTensor(name.to_string()))
    }
}

fn sample(rng: &mut impl Rng, mean: f32, n: usize) -> Vec<f32> {
    let normal = Normal::new(mean, 0.02).expect("0.02 is a valid std");
    (0..n).map(|_| normal.sample(rng)).collect()
}

fn is_finite(t: &Tensor) -> Result<bool> {
    Ok(t.flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .all(|v| v.is_finite()))
}
