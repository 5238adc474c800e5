//! The candle forward pass of a [`NetConfig`], in training or inference mode.

use candle_core::{DType, Tensor, D};

use crate::config::{Layer, NetConfig, SN_U};
use crate::error::{ModelError, Result};
use crate::kernels::conv::ConvKind;
use crate::kernels::fused::{self, Activation};
use crate::kernels::post::Post;
use crate::kernels::{conv, linear, stddev, upsample, Kernels};
use crate::labels::{code_indices, label_values, one_hot};
use crate::params::{tensor_name, Params};

/// BatchNorm epsilon, as PyTorch uses; the exporter folds with the same value.
pub const BN_EPS: f64 = 1e-5;
/// PyTorch's default BatchNorm momentum.
pub const BN_MOMENTUM: f64 = 0.1;

/// How a forward pass treats BatchNorm and the parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pass {
    /// Batch statistics (and running-statistics updates) instead of the running ones.
    pub train: bool,
    /// Parameters enter detached, so the backward pass computes no gradient for them: G's step
    /// needs D's gradient with respect to the image only, and D's weight gradients would be
    /// thrown away (PyTorch computes them anyway: ~9 % of an MNIST step's multiply-adds).
    pub frozen: bool,
    /// A projection layer also returns its features' class logits (see [`Layer::Projection`]).
    pub classify: bool,
}

/// A conditional D's conditions (u32 `[N]` or `[N, A]`, column k in `0..classes[k]`): appended
/// to its input as constant one-hot planes, or, when it ends in a [`Layer::Projection`], taken
/// there instead.
#[derive(Clone, Copy)]
pub(crate) struct LabelPlanes<'a> {
    pub labels: &'a Tensor,
    pub classes: &'a [usize],
}

impl LabelPlanes<'_> {
    /// All columns' classes.
    fn width(&self) -> usize {
        self.classes.iter().sum()
    }

    /// `images` with the planes appended: what the first layer sees.
    fn append_to(&self, images: &Tensor) -> Result<Tensor> {
        let (n, _, h, w) = images.dims4()?;
        let planes = one_hot(self.labels, self.classes, images.device())?
            .reshape((n, self.width(), 1, 1))?
            .broadcast_as((n, self.width(), h, w))?;
        Ok(Tensor::cat(&[images, &planes], 1)?)
    }
}

pub struct Net {
    pub config: NetConfig,
    pub params: Params,
    pub kernels: Kernels,
    /// Weight of a batch's statistics in the running ones (1/k averages k batches exactly).
    pub bn_momentum: f64,
    prefix: String,
}

impl Net {
    pub fn new(config: NetConfig, prefix: &str, params: Params) -> Self {
        Self {
            config,
            params,
            kernels: Kernels::default(),
            bn_momentum: BN_MOMENTUM,
            prefix: prefix.to_string(),
        }
    }

    /// `train` uses batch statistics in BatchNorm and updates the running ones, as PyTorch does.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_coded(x, None, train)
    }

    /// [`Self::forward_t`] with the conditions' codes for [`Layer::ClassAffine`] layers.
    pub(crate) fn forward_coded(
        &self,
        x: &Tensor,
        code: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        let pass = Pass {
            train,
            frozen: false,
            classify: false,
        };
        self.run(x, None, code, pass)
    }

    /// The forward pass of `x`, with `planes` appended to its channels when given; `code`
    /// (f32 `[N, classes]`, the conditions' one-hot codes) feeds [`Layer::ClassAffine`] layers.
    pub(crate) fn run(
        &self,
        x: &Tensor,
        planes: Option<LabelPlanes>,
        code: Option<&Tensor>,
        pass: Pass,
    ) -> Result<Tensor> {
        let layers = &self.config.layers;
        // A D that ends in a projection takes the labels there, not as input planes.
        let (planes, labels) = match layers.last() {
            Some(Layer::Projection { .. }) => (None, planes),
            _ => (planes, None),
        };
        let (mut x, mut i) = match (planes, layers.first()) {
            (None, _) => (x.clone(), 0),
            (
                Some(planes),
                Some(Layer::Conv2d {
                    stride,
                    padding,
                    bias,
                    ..
                }),
            ) if self.fast(x) && planes.classes.len() == 1 => {
                let fused = layers.get(1).and_then(activation);
                let (w, maps, labels) = self.labelled_conv(x, planes, (*stride, *padding), pass)?;
                let bias = if *bias {
                    self.get(0, "bias", pass)?
                } else {
                    Tensor::zeros(maps.dim(1)?, DType::F32, x.device())?
                };
                let post = Post::LabelBiasAct {
                    act: fused.unwrap_or(Activation::Identity),
                    labels,
                };
                let extra = Tensor::cat(&[&maps.flatten_all()?, &bias], 0)?;
                let (y, _) =
                    conv::conv_then(ConvKind::Conv, (x, &w), (*stride, *padding), post, &extra)?;
                (y, 1 + fused.is_some() as usize)
            }
            (Some(planes), _) => (planes.append_to(x)?, 0),
        };
        while i < layers.len() {
            // On the fast path an activation right after a layer is fused into it.
            let fused = if self.fast(&x) {
                layers.get(i + 1).and_then(activation)
            } else {
                None
            };
            let fused_here = match self.shaped_linear(i, &x, pass)? {
                Some(done) => Some(done),
                None => self.fused_conv(i, &x, code, pass)?,
            };
            if let Some((y, consumed)) = fused_here {
                x = y;
                i += consumed;
                continue;
            }
            let (y, consumed) = match Layer::folded_upsample(&layers[i..]) {
                Some(Layer::ConvTranspose2d { bias, .. }) if self.fast(&x) => {
                    let fused = layers.get(i + 2).and_then(activation);
                    let w = self.weight(i + 1, pass)?;
                    let y = upsample::upsample2_conv3x3(&x, &w)?;
                    (
                        self.bias_act(i + 1, bias, y, pass, fused)?,
                        2 + fused.is_some() as usize,
                    )
                }
                _ => self.layer(i, &layers[i], &x, pass, fused, (labels, code))?,
            };
            x = y;
            i += consumed;
        }
        Ok(x)
    }

    /// On the fast path, `Flatten → Linear` and `Linear → Reshape` (no bias) run as one op
    /// ([`linear::linear`]), with the activation after them fused.
    fn shaped_linear(&self, i: usize, x: &Tensor, pass: Pass) -> Result<Option<(Tensor, usize)>> {
        let layers = &self.config.layers;
        if !self.fast(x) {
            return Ok(None);
        }
        let (out, at, bias, consumed) = match &layers[i..] {
            [Layer::Flatten, Layer::Linear { outputs, bias, .. }, ..] => {
                (vec![*outputs], i + 1, *bias, 2)
            }
            [Layer::Linear { bias: false, .. }, Layer::Reshape { shape }, ..] => {
                (shape.clone(), i, false, 2)
            }
            _ => return Ok(None),
        };
        let act = layers.get(i + consumed).and_then(activation);
        let y = linear::linear(x, &self.weight(at, pass)?, &out)?;
        let y = self.bias_act(at, bias, y, pass, act)?;
        Ok(Some((y, consumed + act.is_some() as usize)))
    }

    fn fast(&self, x: &Tensor) -> bool {
        self.kernels.fast_on(x)
    }

    fn get(&self, layer: usize, name: &str, pass: Pass) -> Result<Tensor> {
        let param = self
            .params
            .get(&tensor_name(&self.prefix, layer, name))?
            .as_tensor();
        Ok(if pass.frozen {
            param.detach()
        } else {
            param.clone()
        })
    }

    /// Layer `i`'s weight as the layer applies it: under spectral norm, divided by its largest
    /// singular value σ. σ = uᵀWv from one power-iteration step (v = Wᵀu/‖·‖, u = Wv/‖·‖, W as
    /// a `[dim 0, rest]` matrix) with u and v held constant, so the gradient is PyTorch's
    /// `spectral_norm`'s. A training pass stores the new u; other passes reuse the stored one.
    fn weight(&self, i: usize, pass: Pass) -> Result<Tensor> {
        let w = self.get(i, "weight", pass)?;
        if !self.config.spectral_norm {
            return Ok(w);
        }
        let stored = self.params.get(&tensor_name(&self.prefix, i, SN_U))?;
        let rows = w.dim(0)?;
        let matrix = w.reshape((rows, ()))?;
        let fixed = matrix.detach();
        let u = stored.as_tensor().reshape((rows, 1))?;
        let v = unit(&fixed.t()?.matmul(&u)?)?;
        let u = if pass.train {
            let u = unit(&fixed.matmul(&v)?)?;
            stored.set(&u.flatten_all()?)?;
            u
        } else {
            u
        };
        let sigma = u.t()?.matmul(&matrix.matmul(&v)?)?.reshape(())?;
        Ok(w.broadcast_div(&sigma)?)
    }

    /// The first layer of a D with `planes` appended to `images`, without building the planes:
    /// they are constant, so their part of the output depends on the label only. Each label's
    /// part is the convolution of an all-ones plane with that label's kernels, made once per
    /// batch (`[classes, C, oh, ow]`, returned with the labels for the caller to add per sample
    /// after convolving the images with the image channels' kernels, also returned). The same
    /// terms as the full convolution, summed in another order (MNIST's D: 1 of 11 input
    /// channels carries the image, so ~10× fewer multiply-adds in that layer and no planes).
    fn labelled_conv(
        &self,
        images: &Tensor,
        planes: LabelPlanes,
        (stride, padding): (usize, usize),
        pass: Pass,
    ) -> Result<(Tensor, Tensor, Vec<u32>)> {
        let w = self.weight(0, pass)?;
        let (cout, cin, k, _) = w.dims4()?;
        let (_, channels, h, wd) = images.dims4()?;
        let classes = planes.width();
        if cin != channels + classes {
            return Err(ModelError::InvalidConfig(format!(
                "first layer takes {cin} channels, not {channels} image + {classes} label"
            )));
        }
        let labels = label_values(planes.labels, planes.classes)?;
        // [cout, classes, k, k] → one single-channel kernel per (label, output channel).
        let kernels =
            w.narrow(1, channels, classes)?
                .transpose(0, 1)?
                .reshape((classes * cout, 1, k, k))?;
        let ones = Tensor::ones((1, 1, h, wd), DType::F32, images.device())?;
        let maps = conv::conv2d(&ones, &kernels, stride, padding)?;
        let (_, _, oh, ow) = maps.dims4()?;
        let per_label = maps.reshape((classes, cout, oh, ow))?;
        Ok((w.narrow(1, 0, channels)?, per_label, labels))
    }

    /// Class affine layer `i`'s gain `1 + code·gain` and offset `code·shift` per sample,
    /// `[N, C]` each.
    fn class_gain_offset(&self, i: usize, code: &Tensor, pass: Pass) -> Result<(Tensor, Tensor)> {
        let gain = (code.matmul(&self.get(i, "gain", pass)?)? + 1.0)?;
        Ok((gain, code.matmul(&self.get(i, "shift", pass)?)?))
    }

    /// On the fast path, a convolution and the BatchNorm (training passes, with a class affine
    /// layer after it when given the codes), bias or activation after it as one op
    /// ([`conv::conv_then`]).
    fn fused_conv(
        &self,
        i: usize,
        x: &Tensor,
        code: Option<&Tensor>,
        pass: Pass,
    ) -> Result<Option<(Tensor, usize)>> {
        let layers = &self.config.layers;
        let (kind, channels, stride, padding, bias) = match &layers[i] {
            Layer::Conv2d {
                out_channels,
                stride,
                padding,
                bias,
                ..
            } => (ConvKind::Conv, *out_channels, *stride, *padding, *bias),
            Layer::ConvTranspose2d {
                out_channels,
                stride,
                padding,
                bias,
                ..
            } => (
                ConvKind::Transposed,
                *out_channels,
                *stride,
                *padding,
                *bias,
            ),
            _ => return Ok(None),
        };
        if !self.fast(x) {
            return Ok(None);
        }
        // Decided before the weight is made: under spectral norm a training pass's `weight`
        // advances the power iteration, which the unfused path would then do a second time.
        let (post, extra, consumed) = match layers.get(i + 1) {
            // A bias before BatchNorm (no config has one) stays on the unfused path.
            Some(Layer::BatchNorm2d { .. }) if pass.train && !bias => {
                // A class affine layer right after the BatchNorm joins it when the codes are here.
                let class = match (layers.get(i + 2), code) {
                    (Some(Layer::ClassAffine { .. }), Some(code)) => Some(code),
                    _ => None,
                };
                let next = i + 2 + class.is_some() as usize;
                let act = layers.get(next).and_then(activation);
                let (post_act, eps) = (act.unwrap_or(Activation::Identity), BN_EPS);
                let (gamma, beta) = (
                    self.get(i + 1, "weight", pass)?,
                    self.get(i + 1, "bias", pass)?,
                );
                let (post, extra) = match class {
                    None => (Post::BnAct { act: post_act, eps }, vec![gamma, beta]),
                    Some(code) => {
                        let (gain, offset) = self.class_gain_offset(i + 2, code, pass)?;
                        let (gain, offset) = (gain.flatten_all()?, offset.flatten_all()?);
                        let post = Post::BnClassAct { act: post_act, eps };
                        (post, vec![gamma, beta, gain, offset])
                    }
                };
                let extra = Tensor::cat(&extra, 0)?;
                (post, extra, next - i + act.is_some() as usize)
            }
            next => {
                let act = next.and_then(activation);
                if !bias && act.is_none() {
                    return Ok(None);
                }
                let extra = if bias {
                    self.get(i, "bias", pass)?
                } else {
                    Tensor::zeros(channels, DType::F32, x.device())?
                };
                let post = Post::BiasAct(act.unwrap_or(Activation::Identity));
                (post, extra, 1 + act.is_some() as usize)
            }
        };
        let w = self.weight(i, pass)?;
        let (y, stats) = conv::conv_then(kind, (x, &w), (stride, padding), post, &extra)?;
        if let Some(stats) = stats {
            let (n, _, h, wd) = y.dims4()?;
            self.update_running_stats(i + 1, &stats.get(0)?, &stats.get(1)?, n * h * wd)?;
        }
        Ok(Some((y, consumed)))
    }

    /// Runs layer `i`, fusing `act` into it when given; returns how many layers it consumed.
    fn layer(
        &self,
        i: usize,
        layer: &Layer,
        x: &Tensor,
        pass: Pass,
        act: Option<Activation>,
        (labels, code): (Option<LabelPlanes>, Option<&Tensor>),
    ) -> Result<(Tensor, usize)> {
        let fast = self.fast(x);
        let consumed = 1 + act.is_some() as usize;
        let y = match layer {
            Layer::Linear { bias, .. } => {
                let y = x.matmul(&self.weight(i, pass)?.t()?)?;
                self.bias_act(i, *bias, y, pass, act)?
            }
            Layer::Conv2d {
                stride,
                padding,
                bias,
                ..
            } => {
                let w = self.weight(i, pass)?;
                let y = if fast {
                    conv::conv2d(x, &w, *stride, *padding)?
                } else {
                    x.conv2d(&w, *padding, *stride, 1, 1)?
                };
                self.bias_act(i, *bias, y, pass, act)?
            }
            Layer::ConvTranspose2d {
                stride,
                padding,
                bias,
                ..
            } => {
                let w = self.weight(i, pass)?;
                let y = if fast {
                    conv::conv_transpose2d(x, &w, *stride, *padding)?
                } else {
                    x.conv_transpose2d(&w, *padding, 0, *stride, 1)?
                };
                self.bias_act(i, *bias, y, pass, act)?
            }
            Layer::BatchNorm2d { .. } if fast && pass.train => {
                let (y, stats) = fused::batch_norm_act(
                    x,
                    &self.get(i, "weight", pass)?,
                    &self.get(i, "bias", pass)?,
                    BN_EPS,
                    act.unwrap_or(Activation::Identity),
                )?;
                let (_, _, h, w) = x.dims4()?;
                self.update_running_stats(i, &stats.get(0)?, &stats.get(1)?, x.dim(0)? * h * w)?;
                return Ok((y, consumed));
            }
            Layer::BatchNorm2d { .. } => self.batch_norm(i, x, pass)?,
            Layer::Reshape { shape } => {
                let mut full = vec![x.dim(0)?];
                full.extend(shape);
                x.reshape(full)?
            }
            Layer::Flatten => x.flatten_from(1)?,
            Layer::Upsample { factor } if fast => upsample::upsample_nearest(x, *factor)?,
            Layer::Upsample { factor } => {
                let (_, _, h, w) = x.dims4()?;
                x.upsample_nearest2d(h * factor, w * factor)?
            }
            Layer::MinibatchStddev if fast => stddev::minibatch_stddev(x)?,
            Layer::MinibatchStddev => minibatch_stddev(x)?,
            Layer::Relu | Layer::LeakyRelu { .. } | Layer::Tanh if fast => {
                fused::bias_act(x, None, activation(layer).expect("an activation"))?
            }
            Layer::Relu => x.relu()?,
            Layer::LeakyRelu { slope } => {
                // max(x, slope·x) for 0 < slope < 1: one op, not candle-nn's three.
                x.maximum(&(x * *slope)?)?
            }
            Layer::Tanh => x.tanh()?,
            Layer::ClassAffine { .. } => {
                let Some(code) = code else {
                    return Err(ModelError::InvalidConfig(
                        "a class affine layer needs the conditions".into(),
                    ));
                };
                let (n, c) = (x.dim(0)?, x.dim(1)?);
                let (gain, offset) = self.class_gain_offset(i, code, pass)?;
                x.broadcast_mul(&gain.reshape((n, c, 1, 1))?)?
                    .broadcast_add(&offset.reshape((n, c, 1, 1))?)?
            }
            Layer::Projection { .. } => {
                let Some(labels) = labels else {
                    return Err(ModelError::InvalidConfig(
                        "a projection layer needs the labels".into(),
                    ));
                };
                // One embedding row per condition, summed per sample.
                let rows = code_indices(labels.labels, labels.classes)?;
                let (n, columns) = (x.dim(0)?, labels.classes.len());
                let rows = Tensor::from_vec(rows, n * columns, x.device())?;
                let embedded = self.get(i, "embed", pass)?.index_select(&rows, 0)?;
                let embedded = if columns > 1 {
                    embedded.reshape((n, columns, ()))?.sum(1)?
                } else {
                    embedded
                };
                let y =
                    (x.matmul(&self.weight(i, pass)?.t()?)? + (x * embedded)?.sum_keepdim(1)?)?;
                let y = self.bias_act(i, true, y, pass, act)?;
                if pass.classify {
                    // Every class's score ⟨embed_c, x⟩: the embedding read as a classifier.
                    let scores = x.matmul(&self.get(i, "embed", pass)?.t()?)?;
                    Tensor::cat(&[&y, &scores], 1)?
                } else {
                    y
                }
            }
        };
        // Layers that cannot fuse the activation run it on their own.
        match act {
            Some(a)
                if !matches!(
                    layer,
                    Layer::Linear { .. }
                        | Layer::Conv2d { .. }
                        | Layer::ConvTranspose2d { .. }
                        | Layer::Projection { .. }
                ) =>
            {
                Ok((fused::bias_act(&y, None, a)?, consumed))
            }
            _ => Ok((y, consumed)),
        }
    }

    /// Adds the bias (and the fused activation) to a linear/conv output.
    fn bias_act(
        &self,
        i: usize,
        has_bias: bool,
        x: Tensor,
        pass: Pass,
        act: Option<Activation>,
    ) -> Result<Tensor> {
        let bias = if has_bias {
            Some(self.get(i, "bias", pass)?)
        } else {
            None
        };
        if self.fast(&x) {
            return Ok(match (bias, act) {
                (None, None) => x,
                (b, a) => fused::bias_act(&x, b.as_ref(), a.unwrap_or(Activation::Identity))?,
            });
        }
        let Some(b) = bias else { return Ok(x) };
        let b = if x.rank() == 4 {
            b.reshape((1, (), 1, 1))?
        } else {
            b.unsqueeze(0)?
        };
        Ok(x.broadcast_add(&b)?)
    }

    /// PyTorch's update: momentum `bn_momentum` (0.1), unbiased variance.
    fn update_running_stats(
        &self,
        i: usize,
        mean: &Tensor,
        var: &Tensor,
        count: usize,
    ) -> Result<()> {
        let running_mean = self
            .params
            .get(&tensor_name(&self.prefix, i, "running_mean"))?;
        let running_var = self
            .params
            .get(&tensor_name(&self.prefix, i, "running_var"))?;
        let count = count as f64;
        let unbiased = (var.detach() * (count / (count - 1.0).max(1.0)))?;
        let m = self.bn_momentum;
        let new_mean = ((running_mean.as_tensor() * (1.0 - m))? + (mean.detach() * m)?)?;
        let new_var = ((running_var.as_tensor() * (1.0 - m))? + (unbiased * m)?)?;
        running_mean.set(&new_mean)?;
        running_var.set(&new_var)?;
        Ok(())
    }

    fn batch_norm(&self, i: usize, x: &Tensor, pass: Pass) -> Result<Tensor> {
        let gamma = self.get(i, "weight", pass)?.reshape((1, (), 1, 1))?;
        let beta = self.get(i, "bias", pass)?.reshape((1, (), 1, 1))?;
        let (mean, var) = if pass.train {
            let (n, c, h, w) = x.dims4()?;
            // Per-channel statistics over N, H, W.
            let flat = x.transpose(0, 1)?.reshape((c, n * h * w))?;
            let mean = flat.mean_keepdim(D::Minus1)?;
            let var = flat.broadcast_sub(&mean)?.sqr()?.mean_keepdim(D::Minus1)?;
            self.update_running_stats(i, &mean.flatten_all()?, &var.flatten_all()?, n * h * w)?;
            (mean.reshape((1, c, 1, 1))?, var.reshape((1, c, 1, 1))?)
        } else {
            let running = |name| -> Result<Tensor> {
                let var = self.params.get(&tensor_name(&self.prefix, i, name))?;
                Ok(var.as_tensor().reshape((1, (), 1, 1))?)
            };
            (running("running_mean")?, running("running_var")?)
        };
        let inv_std = (var + BN_EPS)?.sqrt()?.recip()?;
        Ok(x.broadcast_sub(&mean)?
            .broadcast_mul(&inv_std.broadcast_mul(&gamma)?)?
            .broadcast_add(&beta)?)
    }
}

/// `x` with one more channel: the standard deviation of each feature over the batch, averaged
/// over all features, broadcast to every sample and position (ProGAN's whole-batch group).
fn minibatch_stddev(x: &Tensor) -> Result<Tensor> {
    let (n, _, h, w) = x.dims4()?;
    let centred = x.broadcast_sub(&x.mean_keepdim(0)?)?;
    let std = (centred.sqr()?.mean_keepdim(0)? + 1e-8)?.sqrt()?;
    let plane = std
        .mean_all()?
        .reshape((1, 1, 1, 1))?
        .broadcast_as((n, 1, h, w))?;
    Ok(Tensor::cat(&[x, &plane.contiguous()?], 1)?)
}

/// `x / ‖x‖` (PyTorch's `normalize` with eps 1e-12).
fn unit(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_all()?.sqrt()?.maximum(1e-12)?;
    Ok(x.broadcast_div(&norm)?)
}

/// The activation a layer is, if it is one.
fn activation(layer: &Layer) -> Option<Activation> {
    match layer {
        Layer::Relu => Some(Activation::Relu),
        Layer::LeakyRelu { slope } => Some(Activation::LeakyRelu(*slope as f32)),
        Layer::Tanh => Some(Activation::Tanh),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Channels `start..start + len` of `x`, flattened.
    fn channels(x: &Tensor, start: usize, len: usize) -> Vec<f32> {
        x.narrow(1, start, len)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    /// Largest singular value of a `[rows, cols]` matrix, by many power-iteration steps.
    fn sigma(m: &[f32], rows: usize) -> f32 {
        let cols = m.len() / rows;
        let mut v = vec![1f32; cols];
        let mut s = 0.0;
        for _ in 0..500 {
            let u: Vec<f32> = (0..rows)
                .map(|r| (0..cols).map(|c| m[r * cols + c] * v[c]).sum())
                .collect();
            let w: Vec<f32> = (0..cols)
                .map(|c| (0..rows).map(|r| m[r * cols + c] * u[r]).sum())
                .collect();
            let norm = w.iter().map(|x| x * x).sum::<f32>().sqrt();
            s = norm.sqrt();
            v = w.iter().map(|x| x / norm).collect();
        }
        s
    }

    #[test]
    fn class_affine_scales_and_shifts_each_sample_by_its_classes() {
        // Two columns of 2 and 1 classes: codes laid end to end are 3 wide.
        let config = NetConfig {
            input: vec![2, 1, 2],
            layers: vec![Layer::ClassAffine {
                channels: 2,
                classes: 3,
            }],
            spectral_norm: false,
        };
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(3);
        let params = Params::init(&config, "g", &mut rng, &Device::Cpu).unwrap();
        let set = |name: &str, rows: [[f32; 2]; 3]| {
            let t = Tensor::new(&rows, &Device::Cpu).unwrap();
            params.get(name).unwrap().set(&t).unwrap();
        };
        set("g.0.gain", [[0.5, -1.0], [2.0, 0.0], [0.25, 0.5]]);
        set("g.0.shift", [[1.0, 0.0], [0.0, 3.0], [-1.0, 2.0]]);
        let net = Net::new(config, "g", params);
        let x = Tensor::new(
            &[[[[1f32, 2.]], [[3., 4.]]], [[[5., 6.]], [[7., 8.]]]],
            &Device::Cpu,
        )
        .unwrap();
        // Sample 0 is class 0 of column 0, sample 1 class 1; both class 0 of column 1 (code 2).
        let code = Tensor::new(&[[1f32, 0., 1.], [0., 1., 1.]], &Device::Cpu).unwrap();
        let pass = Pass {
            train: false,
            frozen: false,
            classify: false,
        };
        let y = net.run(&x, None, Some(&code), pass).unwrap();
        // Scales 1 + gain rows summed: sample 0 (1.75, 0.5), sample 1 (3.25, 1.5); shifts
        // (0, 2) and (-1, 5).
        let expected = [
            1.75,
            3.5,
            1.5 + 2.,
            2. + 2.,
            5. * 3.25 - 1.,
            6. * 3.25 - 1.,
            15.5,
            17.,
        ];
        let y: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(y, expected);
        let e = net.run(&x, None, None, pass).unwrap_err().to_string();
        assert!(e.contains("needs the conditions"), "{e}");
    }

    #[test]
    fn spectral_norm_scales_the_weight_to_unit_norm() {
        let config = NetConfig {
            input: vec![6],
            layers: vec![Layer::Linear {
                inputs: 6,
                outputs: 4,
                bias: false,
            }],
            spectral_norm: true,
        };
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(3);
        let params = Params::init(&config, "d", &mut rng, &Device::Cpu).unwrap();
        let net = Net::new(config, "d", params);
        let raw = |net: &Net| -> Vec<f32> {
            let w = net.params.get("d.0.weight").unwrap();
            w.as_tensor().flatten_all().unwrap().to_vec1().unwrap()
        };
        let applied = |net: &Net| -> Vec<f32> {
            let pass = Pass {
                train: false,
                frozen: false,
                classify: false,
            };
            let w = net.weight(0, pass).unwrap();
            w.flatten_all().unwrap().to_vec1().unwrap()
        };
        assert!(sigma(&raw(&net), 4) < 0.5, "N(0, 0.02) weights are small");
        let x = Tensor::ones((2, 6), DType::F32, &Device::Cpu).unwrap();
        for _ in 0..20 {
            net.forward_t(&x, true).unwrap();
        }
        let s = sigma(&applied(&net), 4);
        assert!((s - 1.0).abs() < 1e-3, "σ of the applied weight: {s}");
        // The parameter itself is untouched: only the applied weight is rescaled.
        let ratio: Vec<f32> = raw(&net)
            .iter()
            .zip(applied(&net))
            .map(|(r, a)| a / r)
            .collect();
        assert!(ratio.iter().all(|q| (q - ratio[0]).abs() < 1e-3 * ratio[0]));
    }

    #[test]
    fn minibatch_stddev_is_near_zero_for_a_collapsed_batch_only() {
        let one = Tensor::arange(0f32, 12.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 3, 2, 2))
            .unwrap();
        let collapsed = Tensor::cat(&[&one, &one, &one], 0).unwrap();
        let y = minibatch_stddev(&collapsed).unwrap();
        assert_eq!(y.dims(), [3, 4, 2, 2]);
        let extra = channels(&y, 3, 1);
        assert!(extra.iter().all(|&v| v < 1e-3), "{extra:?}");
        // Two samples that differ by 2 everywhere: population std 1 for every feature.
        let apart = Tensor::cat(&[&one, &(&one + 2.0).unwrap()], 0).unwrap();
        let y = minibatch_stddev(&apart).unwrap();
        let extra = channels(&y, 3, 1);
        assert!(extra.iter().all(|&v| (v - 1.0).abs() < 1e-4), "{extra:?}");
        // The original channels pass through untouched.
        assert_eq!(channels(&y, 0, 3), channels(&apart, 0, 3));
    }
}
