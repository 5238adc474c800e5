//! Inference layers: the generator's layers with each BatchNorm folded into the Gemm/Conv/
//! ConvTranspose before it (`y = scale·(Wx + b) + shift` becomes one weighted layer), and each
//! ×2 upsample + 3×3 conv as the one transposed conv it equals (as the fast path runs it).

use candle_core::{Device, Tensor};
use gan_models::kernels::upsample::fold_upsample2_conv3x3;
use gan_models::net::BN_EPS;
use gan_models::params::tensor_name;
use gan_models::{Layer, NetConfig, Params};

use crate::error::{ExportError, Result};

/// A named tensor on the host.
#[derive(Debug, Clone)]
pub struct HostTensor {
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

#[derive(Debug, Clone)]
pub struct InferenceLayer {
    pub layer: Layer,
    pub tensors: Vec<HostTensor>,
}

impl InferenceLayer {
    pub fn tensor(&self, name: &str) -> Option<&HostTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// Reads every layer's tensors and folds BatchNorm layers where a weighted layer precedes them.
pub fn inference_layers(
    net: &NetConfig,
    params: &Params,
    prefix: &str,
) -> Result<Vec<InferenceLayer>> {
    let mut out: Vec<InferenceLayer> = Vec::new();
    for (i, layer) in net.layers.iter().enumerate() {
        let mut tensors = Vec::new();
        for (name, shape) in layer.parameters().into_iter().chain(layer.buffers()) {
            let t = params.get(&tensor_name(prefix, i, name))?.as_tensor();
            let data = t.flatten_all()?.to_vec1::<f32>()?;
            tensors.push(HostTensor { name, shape, data });
        }
        let mut current = InferenceLayer {
            layer: layer.clone(),
            tensors,
        };
        // An upsample is pushed unchanged, so `out`'s last layer is layer i − 1 when it is one.
        if let Some(folded) = i
            .checked_sub(1)
            .and_then(|prev| Layer::folded_upsample(&net.layers[prev..]))
        {
            out.pop();
            current = fold_upsample(current, folded)?;
        }
        if let Layer::BatchNorm2d { channels } = layer {
            if let Some(target) = fold_target(&mut out, *channels) {
                fold(target, &current)?;
                continue;
            }
        }
        out.push(current);
    }
    Ok(out)
}

/// The weighted layer a BatchNorm over `channels` can fold into, with the number of consecutive
/// outputs per channel: a conv directly before it, or a Linear followed by one Reshape to
/// `[channels, …]`.
fn fold_target(
    out: &mut [InferenceLayer],
    channels: usize,
) -> Option<(&mut InferenceLayer, usize)> {
    let n = out.len();
    match out {
        [.., prev] if matches!(prev.layer, Layer::Conv2d { out_channels, .. } | Layer::ConvTranspose2d { out_channels, .. } if out_channels == channels) => {
            Some((&mut out[n - 1], 0))
        }
        [.., lin, reshape] => match (&lin.layer, &reshape.layer) {
            (Layer::Linear { outputs, .. }, Layer::Reshape { shape })
                if shape.first() == Some(&channels) && outputs % channels == 0 =>
            {
                let per = outputs / channels;
                Some((&mut out[n - 2], per))
            }
            _ => None,
        },
        _ => None,
    }
}

fn fold((target, per_channel): (&mut InferenceLayer, usize), bn: &InferenceLayer) -> Result<()> {
    let get = |name: &str| -> Result<&Vec<f32>> {
        bn.tensor(name)
            .map(|t| &t.data)
            .ok_or_else(|| ExportError::Invalid(format!("batch norm lacks {name}")))
    };
    let (gamma, beta, mean, var) = (
        get("weight")?,
        get("bias")?,
        get("running_mean")?,
        get("running_var")?,
    );
    let scale: Vec<f64> = gamma
        .iter()
        .zip(var)
        .map(|(&g, &v)| g as f64 / (v as f64 + BN_EPS).sqrt())
        .collect();
    let shift: Vec<f64> = (0..scale.len())
        .map(|c| beta[c] as f64 - mean[c] as f64 * scale[c])
        .collect();
    // Output index → channel, per layer kind.
    let (outputs, channel_of): (usize, Box<dyn Fn(usize) -> usize>) = match target.layer {
        Layer::Linear { outputs, .. } => (outputs, Box::new(move |o| o / per_channel)),
        Layer::Conv2d { out_channels, .. } | Layer::ConvTranspose2d { out_channels, .. } => {
            (out_channels, Box::new(|o| o))
        }
        _ => unreachable!("fold_target only returns weighted layers"),
    };
    let weight = target
        .tensors
        .iter_mut()
        .find(|t| t.name == "weight")
        .ok_or_else(|| ExportError::Invalid("weighted layer lacks weight".into()))?;
    match target.layer {
        // Weight [Cin, Cout, k, k]: output channel is the second axis.
        Layer::ConvTranspose2d {
            out_channels,
            kernel,
            ..
        } => {
            let block = kernel * kernel;
            for (i, w) in weight.data.iter_mut().enumerate() {
                *w = (*w as f64 * scale[(i / block) % out_channels]) as f32;
            }
        }
        // Weight [out, …]: output index is the first axis.
        _ => {
            let row = weight.data.len() / outputs;
            for (i, w) in weight.data.iter_mut().enumerate() {
                *w = (*w as f64 * scale[channel_of(i / row)]) as f32;
            }
        }
    }
    let old_bias = target
        .tensors
        .iter()
        .find(|t| t.name == "bias")
        .map(|t| t.data.clone());
    let bias: Vec<f32> = (0..outputs)
        .map(|o| {
            let c = channel_of(o);
            let b = old_bias.as_ref().map_or(0.0, |b| b[o] as f64);
            (b * scale[c] + shift[c]) as f32
        })
        .collect();
    target.tensors.retain(|t| t.name != "bias");
    target.tensors.push(HostTensor {
        name: "bias",
        shape: vec![outputs],
        data: bias,
    });
    match &mut target.layer {
        Layer::Linear { bias, .. }
        | Layer::Conv2d { bias, .. }
        | Layer::ConvTranspose2d { bias, .. } => *bias = true,
        _ => unreachable!(),
    }
    Ok(())
}

/// The 3×3 conv `conv` after a ×2 upsample as the transposed conv `folded` it equals.
fn fold_upsample(mut conv: InferenceLayer, folded: Layer) -> Result<InferenceLayer> {
    let weight = conv
        .tensors
        .iter_mut()
        .find(|t| t.name == "weight")
        .ok_or_else(|| ExportError::Invalid("convolution lacks weight".into()))?;
    let w = Tensor::from_slice(&weight.data, weight.shape.as_slice(), &Device::Cpu)?;
    let k = fold_upsample2_conv3x3(&w)?;
    weight.shape = k.dims().to_vec();
    weight.data = k.flatten_all()?.to_vec1()?;
    conv.layer = folded;
    Ok(conv)
}
