//! Fused CPU ops for the layers around the convolutions: bias + activation and training-mode
//! BatchNorm + activation, each with a hand-written backward.
//!
//! With candle's generic ops these cost more than the convolutions themselves: every broadcast
//! in the backward pass becomes a strided reduction over (N, H, W), and LeakyReLU's backward is a
//! chain of comparisons and masks (ARCHITECTURE.md measured them 20–70× slower than PyTorch).
//! Work is split by channel or by sample, never inside a sum, so results are deterministic.

use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor,
};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::cpu_conv::slice;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    Identity,
    Relu,
    /// Slope in (0, 1).
    LeakyRelu(f32),
    Tanh,
}

impl Activation {
    #[inline]
    fn apply(self, v: f32) -> f32 {
        match self {
            Activation::Identity => v,
            Activation::Relu => v.max(0.0),
            Activation::LeakyRelu(s) => {
                if v > 0.0 {
                    v
                } else {
                    v * s
                }
            }
            Activation::Tanh => v.tanh(),
        }
    }

    /// The derivative, written in terms of the output (all four are monotonic).
    #[inline]
    fn grad_from_output(self, y: f32) -> f32 {
        match self {
            Activation::Identity => 1.0,
            Activation::Relu => (y > 0.0) as u8 as f32,
            Activation::LeakyRelu(s) => {
                if y > 0.0 {
                    1.0
                } else {
                    s
                }
            }
            Activation::Tanh => 1.0 - y * y,
        }
    }
}

/// `[N, C, rest…]` viewed as N samples × C channels × S elements.
fn ncs(dims: &[usize]) -> Result<(usize, usize, usize)> {
    match dims {
        [n, c, rest @ ..] => Ok((*n, *c, rest.iter().product())),
        _ => bail!("fused op expects [N, C, …], got {dims:?}"),
    }
}

/// `act(x · scale[c] + shift[c])` over `[N, C, S]`, parallel over samples.
fn affine_act(
    x: &[f32],
    c: usize,
    s: usize,
    scale: &[f32],
    shift: &[f32],
    act: Activation,
) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(c * s)
        .zip(x.par_chunks(c * s))
        .for_each(|(yo, xi)| {
            for ch in 0..c {
                let (a, b) = (scale[ch], shift[ch]);
                for (o, &v) in yo[ch * s..(ch + 1) * s]
                    .iter_mut()
                    .zip(&xi[ch * s..(ch + 1) * s])
                {
                    *o = act.apply(v * a + b);
                }
            }
        });
    y
}

/// Per-channel sums of `f(channel, index)` over N and S, parallel over channels.
fn channel_sums(n: usize, c: usize, s: usize, f: impl Fn(usize, usize) -> f64 + Sync) -> Vec<f64> {
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let mut acc = 0f64;
            for i in 0..n {
                let base = (i * c + ch) * s;
                acc += (base..base + s).map(|i| f(ch, i)).sum::<f64>();
            }
            acc
        })
        .collect()
}

/// `y = act(x + bias[c])` (bias optional via `BiasAct::apply`).
struct BiasAct(Activation);
/// `(y, dy) → dy · act'(y)`.
struct ActGrad(Activation);
/// `[N, C, …] → [C]` sums.
struct ChannelSum;

impl CustomOp2 for BiasAct {
    fn name(&self) -> &'static str {
        "bias-act"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, b) = (slice(s1, l1)?, slice(s2, l2)?);
        let (_, c, s) = ncs(l1.dims())?;
        if b.len() != c {
            bail!("bias of {} for {c} channels", b.len());
        }
        let y = affine_act(x, c, s, &vec![1.0; c], b, self.0);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _b: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dpre = y.apply_op2_no_bwd(&dy.contiguous()?, &ActGrad(self.0))?;
        let db = dpre.apply_op1_no_bwd(&ChannelSum)?;
        Ok((Some(dpre), Some(db)))
    }
}

impl CustomOp1 for BiasAct {
    fn name(&self) -> &'static str {
        "act"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let act = self.0;
        let y: Vec<f32> = slice(s, l)?.par_iter().map(|&v| act.apply(v)).collect();
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            y.apply_op2_no_bwd(&dy.contiguous()?, &ActGrad(self.0))?,
        ))
    }
}

impl CustomOp2 for ActGrad {
    fn name(&self) -> &'static str {
        "act-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, dy) = (slice(s1, l1)?, slice(s2, l2)?);
        let act = self.0;
        let out: Vec<f32> = y
            .par_iter()
            .zip(dy.par_iter())
            .map(|(&y, &g)| g * act.grad_from_output(y))
            .collect();
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

impl CustomOp1 for ChannelSum {
    fn name(&self) -> &'static str {
        "channel-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l)?;
        let (n, c, sp) = ncs(l.dims())?;
        let sums = channel_sums(n, c, sp, |_, i| x[i] as f64);
        Ok((
            CpuStorage::F32(sums.into_iter().map(|v| v as f32).collect()),
            Shape::from(c),
        ))
    }
}

/// `act(x + bias)` with a fused backward; `bias` is per channel (dim 1).
pub fn bias_act(x: &Tensor, bias: Option<&Tensor>, act: Activation) -> Result<Tensor> {
    let x = x.contiguous()?;
    match bias {
        Some(b) => x.apply_op2(&b.contiguous()?, BiasAct(act)),
        None => x.apply_op1(BiasAct(act)),
    }
}

/// Per-channel batch mean and biased variance, computed once by the forward pass and shared
/// with the running-statistics update and the backward pass.
type Moments = Arc<Mutex<Option<(Vec<f64>, Vec<f64>)>>>;

/// Training-mode BatchNorm then activation: `(x, gamma, beta) → y`.
struct BnAct {
    act: Activation,
    eps: f64,
    moments: Moments,
}
/// `(x, gamma, dpre) → [dx…, dgamma…, dbeta…]` packed in one vector; uses the forward pass's
/// moments when given.
struct BnGrad {
    eps: f64,
    moments: Option<(Vec<f64>, Vec<f64>)>,
}

/// Mean and biased variance of each channel, in f64 for stability.
fn stats(x: &[f32], n: usize, c: usize, s: usize) -> (Vec<f64>, Vec<f64>) {
    let count = (n * s) as f64;
    let mean: Vec<f64> = channel_sums(n, c, s, |_, i| x[i] as f64)
        .into_iter()
        .map(|v| v / count)
        .collect();
    let var = channel_sums(n, c, s, |ch, i| {
        let d = x[i] as f64 - mean[ch];
        d * d
    })
    .into_iter()
    .map(|v| v / count)
    .collect();
    (mean, var)
}

impl CustomOp3 for BnAct {
    fn name(&self) -> &'static str {
        "batch-norm-act"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, gamma, beta) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let (n, c, s) = ncs(l1.dims())?;
        if gamma.len() != c || beta.len() != c {
            bail!("batch norm parameters do not match {c} channels");
        }
        let (mean, var) = stats(x, n, c, s);
        let scale: Vec<f32> = (0..c)
            .map(|ch| (gamma[ch] as f64 / (var[ch] + self.eps).sqrt()) as f32)
            .collect();
        let shift: Vec<f32> = (0..c)
            .map(|ch| beta[ch] - (mean[ch] * scale[ch] as f64) as f32)
            .collect();
        let y = affine_act(x, c, s, &scale, &shift, self.act);
        *self.moments.lock().expect("not poisoned") = Some((mean, var));
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dpre = y.apply_op2_no_bwd(&dy.contiguous()?, &ActGrad(self.act))?;
        let moments = self.moments.lock().expect("not poisoned").clone();
        let grad = BnGrad {
            eps: self.eps,
            moments,
        };
        let packed = x.apply_op3_no_bwd(gamma, &dpre, &grad)?;
        let (numel, c) = (x.elem_count(), gamma.elem_count());
        let dx = packed.narrow(0, 0, numel)?.reshape(x.shape())?;
        let dgamma = packed.narrow(0, numel, c)?;
        let dbeta = packed.narrow(0, numel + c, c)?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

impl CustomOp3 for BnGrad {
    fn name(&self) -> &'static str {
        "batch-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, gamma, g) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let (n, c, s) = ncs(l1.dims())?;
        let count = (n * s) as f64;
        let (mean, var) = match &self.moments {
            Some(m) => m.clone(),
            None => stats(x, n, c, s),
        };
        let inv_std: Vec<f64> = var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect();
        let xhat = |ch: usize, i: usize| (x[i] as f64 - mean[ch]) * inv_std[ch];
        let dbeta = channel_sums(n, c, s, |_, i| g[i] as f64);
        let dgamma = channel_sums(n, c, s, |ch, i| g[i] as f64 * xhat(ch, i));
        let mut out = vec![0f32; x.len() + 2 * c];
        let (dx, tail) = out.split_at_mut(x.len());
        dx.par_chunks_mut(c * s)
            .enumerate()
            .for_each(|(sample, dxs)| {
                for ch in 0..c {
                    let k = gamma[ch] as f64 * inv_std[ch] / count;
                    for j in 0..s {
                        let i = (sample * c + ch) * s + j;
                        dxs[ch * s + j] = (k
                            * (count * g[i] as f64 - dbeta[ch] - xhat(ch, i) * dgamma[ch]))
                            as f32;
                    }
                }
            });
        for ch in 0..c {
            tail[ch] = dgamma[ch] as f32;
            tail[c + ch] = dbeta[ch] as f32;
        }
        Ok((CpuStorage::F32(out), Shape::from(x.len() + 2 * c)))
    }
}

/// Training-mode BatchNorm (batch statistics) followed by `act`, fused, with its backward.
/// Returns the output and the batch `[2, C]` mean/biased-variance for the running statistics.
pub fn batch_norm_act(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    act: Activation,
) -> Result<(Tensor, Tensor)> {
    let x = x.contiguous()?;
    let moments = Moments::default();
    let op = BnAct {
        act,
        eps,
        moments: Arc::clone(&moments),
    };
    let y = x.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    let (mean, var) = moments
        .lock()
        .expect("not poisoned")
        .clone()
        .ok_or_else(|| candle_core::Error::Msg("batch norm ran without statistics".into()))?;
    let c = mean.len();
    let stats = mean
        .into_iter()
        .chain(var)
        .map(|v| v as f32)
        .collect::<Vec<_>>();
    Ok((y, Tensor::from_vec(stats, (2, c), x.device())?))
}
