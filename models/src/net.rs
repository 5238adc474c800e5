//! The candle forward pass of a [`NetConfig`], in training or inference mode.

use candle_core::{Tensor, D};

use crate::config::{Layer, NetConfig};
use crate::error::Result;
use crate::params::{tensor_name, Params};

const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

pub struct Net {
    pub config: NetConfig,
    pub params: Params,
    prefix: String,
}

impl Net {
    pub fn new(config: NetConfig, prefix: &str, params: Params) -> Self {
        Self {
            config,
            params,
            prefix: prefix.to_string(),
        }
    }

    /// `train` uses batch statistics in BatchNorm and updates the running ones, as PyTorch does.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = x.clone();
        for (i, layer) in self.config.layers.iter().enumerate() {
            x = self.layer(i, layer, &x, train)?;
        }
        Ok(x)
    }

    fn get(&self, layer: usize, name: &str) -> Result<Tensor> {
        Ok(self
            .params
            .get(&tensor_name(&self.prefix, layer, name))?
            .as_tensor()
            .clone())
    }

    fn bias(&self, i: usize, has_bias: bool, x: Tensor) -> Result<Tensor> {
        if !has_bias {
            return Ok(x);
        }
        let b = self.get(i, "bias")?;
        let b = if x.rank() == 4 {
            b.reshape((1, (), 1, 1))?
        } else {
            b.unsqueeze(0)?
        };
        Ok(x.broadcast_add(&b)?)
    }

    fn layer(&self, i: usize, layer: &Layer, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(match layer {
            Layer::Linear { bias, .. } => {
                let y = x.matmul(&self.get(i, "weight")?.t()?)?;
                self.bias(i, *bias, y)?
            }
            Layer::Conv2d {
                stride,
                padding,
                bias,
                ..
            } => {
                let y = x.conv2d(&self.get(i, "weight")?, *padding, *stride, 1, 1)?;
                self.bias(i, *bias, y)?
            }
            Layer::ConvTranspose2d {
                stride,
                padding,
                bias,
                ..
            } => {
                let y = x.conv_transpose2d(&self.get(i, "weight")?, *padding, 0, *stride, 1)?;
                self.bias(i, *bias, y)?
            }
            Layer::BatchNorm2d { .. } => self.batch_norm(i, x, train)?,
            Layer::Reshape { shape } => {
                let mut full = vec![x.dim(0)?];
                full.extend(shape);
                x.reshape(full)?
            }
            Layer::Flatten => x.flatten_from(1)?,
            Layer::Relu => x.relu()?,
            Layer::LeakyRelu { slope } => {
                // max(x, slope·x) for 0 < slope < 1: one op, not candle-nn's three.
                x.maximum(&(x * *slope)?)?
            }
            Layer::Tanh => x.tanh()?,
        })
    }

    fn batch_norm(&self, i: usize, x: &Tensor, train: bool) -> Result<Tensor> {
        let gamma = self.get(i, "weight")?.reshape((1, (), 1, 1))?;
        let beta = self.get(i, "bias")?.reshape((1, (), 1, 1))?;
        let running_mean = self.params.get(&tensor_name(&self.prefix, i, "running_mean"))?;
        let running_var = self.params.get(&tensor_name(&self.prefix, i, "running_var"))?;
        let (mean, var) = if train {
            let (n, c, h, w) = x.dims4()?;
            let count = (n * h * w) as f64;
            // Per-channel statistics over N, H, W.
            let flat = x.transpose(0, 1)?.reshape((c, n * h * w))?;
            let mean = flat.mean_keepdim(D::Minus1)?;
            let centered = flat.broadcast_sub(&mean)?;
            let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
            let unbiased = (var.detach() * (count / (count - 1.0).max(1.0)))?.flatten_all()?;
            let new_mean = ((running_mean.as_tensor() * (1.0 - BN_MOMENTUM))?
                + (mean.detach().flatten_all()? * BN_MOMENTUM)?)?;
            let new_var =
                ((running_var.as_tensor() * (1.0 - BN_MOMENTUM))? + (unbiased * BN_MOMENTUM)?)?;
            running_mean.set(&new_mean)?;
            running_var.set(&new_var)?;
            (mean.reshape((1, c, 1, 1))?, var.reshape((1, c, 1, 1))?)
        } else {
            (
                running_mean.as_tensor().reshape((1, (), 1, 1))?,
                running_var.as_tensor().reshape((1, (), 1, 1))?,
            )
        };
        let inv_std = (var + BN_EPS)?.sqrt()?.recip()?;
        Ok(x.broadcast_sub(&mean)?
            .broadcast_mul(&inv_std.broadcast_mul(&gamma)?)?
            .broadcast_add(&beta)?)
    }
}
