//! Fused CPU ops for the layers around the convolutions: bias + activation and training-mode
//! BatchNorm + activation, each with a hand-written backward.
//!
//! With candle's generic ops these cost more than the convolutions themselves: every broadcast
//! in the backward pass becomes a strided reduction over (N, H, W), and LeakyReLU's backward is a
//! chain of comparisons and masks (far slower than PyTorch's: docs/performance.md).
//! Work is split by channel or by sample, never inside a sum, so results are deterministic.

use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor,
};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::kernels::storage::{filled, slice};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    Identity,
    Relu,
    /// Slope in (0, 1).
    LeakyRelu(f32),
    Tanh,
}

/// Binds `$f` (the activation) and `$df` (its derivative, written in terms of the output; all
/// four are monotonic) as plain closures, then runs `$body`: one match per call, so every loop
/// is compiled (and vectorised) per activation instead of branching on the enum per element.
macro_rules! with_activation {
    ($act:expr, |$f:ident, $df:ident| $body:expr) => {
        match $act {
            Activation::Identity => {
                let ($f, $df) = (|v: f32| v, |_: f32| 1.0f32);
                $body
            }
            Activation::Relu => {
                let ($f, $df) = (|v: f32| v.max(0.0), |y: f32| (y > 0.0) as u8 as f32);
                $body
            }
            Activation::LeakyRelu(s) => {
                // Branch-free, so the loops vectorise.
                let $f = move |v: f32| v.max(0.0) + s * v.min(0.0);
                let $df = move |y: f32| s + (1.0 - s) * ((y > 0.0) as u8 as f32);
                $body
            }
            Activation::Tanh => {
                let ($f, $df) = (
                    |v: f32| $crate::kernels::tanh::tanh(v),
                    |y: f32| 1.0 - y * y,
                );
                $body
            }
        }
    };
}
pub(crate) use with_activation;

/// `[N, C, rest…]` viewed as N samples × C channels × S elements.
pub(crate) fn ncs(dims: &[usize]) -> Result<(usize, usize, usize)> {
    match dims {
        [n, c, rest @ ..] => Ok((*n, *c, rest.iter().product())),
        _ => bail!("fused op expects [N, C, …], got {dims:?}"),
    }
}

/// Elements per parallel work item of the element-wise maps.
const MAP_CHUNK: usize = 1 << 14;

/// `f(a[i], b[i])` for every element, parallel over fixed chunks.
fn map2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "element-wise operands differ in length");
    // SAFETY: the chunks tile the output and every element of each is written.
    unsafe {
        filled(a.len(), |out| {
            out.par_chunks_mut(MAP_CHUNK)
                .zip(a.par_chunks(MAP_CHUNK).zip(b.par_chunks(MAP_CHUNK)))
                .for_each(|(o, (a, b))| {
                    for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                        o.write(f(a, b));
                    }
                })
        })
    }
}

/// `act(x · scale + shift)` over `[N, C, S]`, parallel over samples: `scale` and `shift` hold
/// one value per channel (`[C]`) or one per sample and channel (`[N·C]`, conditional BatchNorm).
pub(crate) fn affine_act(
    x: &[f32],
    c: usize,
    s: usize,
    scale: &[f32],
    shift: &[f32],
    act: Activation,
) -> Vec<f32> {
    let n = x.len() / (c * s).max(1);
    let per_sample = scale.len() != c;
    assert!(
        x.len().is_multiple_of(c * s)
            && scale.len() == shift.len()
            && (scale.len() == c || scale.len() == n * c)
    );
    // SAFETY: the samples tile the output, and each sample's c planes of s are all written.
    unsafe {
        filled(x.len(), |y| {
            with_activation!(act, |f, _df| {
                y.par_chunks_mut(c * s)
                    .zip(x.par_chunks(c * s))
                    .enumerate()
                    .for_each(|(i, (yo, xi))| {
                        let at = if per_sample { i * c } else { 0 };
                        let (scale, shift) = (&scale[at..][..c], &shift[at..][..c]);
                        let planes = yo.chunks_exact_mut(s).zip(xi.chunks_exact(s));
                        for ((yo, xi), (&a, &b)) in planes.zip(scale.iter().zip(shift)) {
                            for (o, &v) in yo.iter_mut().zip(xi) {
                                o.write(f(v * a + b));
                            }
                        }
                    })
            })
        })
    }
}

/// Σ f(a[i], b[i]) in 16 independent f32 lanes, which the compiler vectorises (a single running
/// sum is a serial chain of dependent adds); callers keep each call to one sample's plane and
/// add the planes up in f64.
#[inline(always)]
pub(crate) fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    const LANES: usize = 16;
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(&a, &b)| f(a, b))
        .sum();
    let mut acc = [0f32; LANES];
    for (a, b) in ac.zip(bc) {
        for l in 0..LANES {
            acc[l] += f(a[l], b[l]);
        }
    }
    acc.iter().map(|&v| v as f64).sum::<f64>() + tail as f64
}

/// Per-channel Σ over N and S of `f(a, b, k[c])` for two `[N, C, S]` arrays and a per-channel
/// constant, parallel over channels (never inside a sum, so results are deterministic).
fn channel_sums(
    (a, b): (&[f32], &[f32]),
    (n, c, s): (usize, usize, usize),
    k: &[f32],
    f: impl Fn(f32, f32, f32) -> f32 + Sync,
) -> Vec<f64> {
    (0..c)
        .into_par_iter()
        .map(|ch| {
            (0..n)
                .map(|i| {
                    let plane = (i * c + ch) * s..(i * c + ch + 1) * s;
                    lane_sum(&a[plane.clone()], &b[plane], |x, y| f(x, y, k[ch]))
                })
                .sum()
        })
        .collect()
}

/// Per-channel Σ of `x` over N and S.
fn channel_totals(x: &[f32], dims: (usize, usize, usize)) -> Vec<f64> {
    channel_sums((x, x), dims, &vec![0.0; dims.1], |v, _, _| v)
}

/// `act(x + bias[c])` over `x` of shape `dims` (`[N, C, …]`): the bias + activation op's
/// forward, shared with the fused convolution's.
pub(crate) fn add_bias_act(
    x: &[f32],
    dims: &[usize],
    bias: &[f32],
    act: Activation,
) -> Result<Vec<f32>> {
    let (_, c, s) = ncs(dims)?;
    if bias.len() != c {
        bail!("bias of {} for {c} channels", bias.len());
    }
    Ok(affine_act(x, c, s, &vec![1.0; c], bias, act))
}

/// The gradients of `act(x + bias)`'s input and bias from its output `y` and gradient `dy`.
pub(crate) fn bias_act_grads(y: &Tensor, dy: &Tensor, act: Activation) -> Result<(Tensor, Tensor)> {
    let dpre = y.apply_op2_no_bwd(&dy.contiguous()?, &ActGrad(act))?;
    let db = dpre.apply_op1_no_bwd(&ChannelSum)?;
    Ok((dpre, db))
}

/// `y = act(x + bias[c])` (bias optional via `BiasAct::apply`).
struct BiasAct(Activation);
/// `(y, dy) → dy · act'(y)`.
pub(crate) struct ActGrad(pub(crate) Activation);
/// `[N, C, …] → [C]` sums.
pub(crate) struct ChannelSum;

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
        let y = add_bias_act(slice(s1, l1)?, l1.dims(), slice(s2, l2)?, self.0)?;
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _b: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dpre, db) = bias_act_grads(y, dy, self.0)?;
        Ok((Some(dpre), Some(db)))
    }
}

impl CustomOp1 for BiasAct {
    fn name(&self) -> &'static str {
        "act"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l)?;
        let y = with_activation!(self.0, |f, _df| map2(x, x, |v, _| f(v)));
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
        let out = with_activation!(self.0, |_f, df| map2(y, dy, |y, g| g * df(y)));
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
        let sums = channel_totals(x, (n, c, sp));
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

/// `[N, C, …] → [classes, C, …]`: each label's samples summed, in sample order.
pub(crate) struct LabelSum {
    pub(crate) labels: Vec<u32>,
    pub(crate) classes: usize,
}

impl CustomOp1 for LabelSum {
    fn name(&self) -> &'static str {
        "label-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l)?;
        let (n, c, sp) = ncs(l.dims())?;
        if self.labels.len() != n {
            bail!("{} labels for {n} samples", self.labels.len());
        }
        // One output plane per (label, channel), parallel over planes, each summed in sample order.
        let mut sums = vec![0f32; self.classes * c * sp];
        sums.par_chunks_mut(sp).enumerate().for_each(|(k, o)| {
            let (label, ch) = ((k / c) as u32, k % c);
            for (i, _) in self.labels.iter().enumerate().filter(|(_, &l)| l == label) {
                for (o, &v) in o.iter_mut().zip(&x[(i * c + ch) * sp..][..sp]) {
                    *o += v;
                }
            }
        });
        let mut dims = l.dims().to_vec();
        dims[0] = self.classes;
        Ok((CpuStorage::F32(sums), Shape::from(dims)))
    }
}

/// Per-channel batch mean and biased variance, computed once by the forward pass and shared
/// with the running-statistics update and the backward pass.
pub(crate) type Moments = Arc<Mutex<Option<BatchMoments>>>;
/// Batch mean and biased variance per channel.
pub(crate) type BatchMoments = (Vec<f64>, Vec<f64>);

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
    moments: Option<BatchMoments>,
}

/// Mean and biased variance of each channel, two-pass (centred squares) for stability.
pub(crate) fn stats(x: &[f32], n: usize, c: usize, s: usize) -> BatchMoments {
    let count = (n * s) as f64;
    let mean: Vec<f64> = channel_totals(x, (n, c, s))
        .into_iter()
        .map(|v| v / count)
        .collect();
    let centre: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
    let var = channel_sums((x, x), (n, c, s), &centre, |v, _, m| (v - m) * (v - m))
        .into_iter()
        .map(|v| v / count)
        .collect();
    (mean, var)
}

/// Training BatchNorm then `act` of `x` (`[N, C, …]`): the output and the batch moments.
pub(crate) fn bn_act(
    x: &[f32],
    dims: &[usize],
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    act: Activation,
) -> Result<(Vec<f32>, BatchMoments)> {
    let (n, c, s) = ncs(dims)?;
    if gamma.len() != c || beta.len() != c {
        bail!("batch norm parameters do not match {c} channels");
    }
    let moments = stats(x, n, c, s);
    let (scale, shift) = bn_affine(gamma, beta, &moments, eps);
    Ok((affine_act(x, c, s, &scale, &shift, act), moments))
}

/// Training BatchNorm as the per-channel map `x · scale + shift` for the batch's moments.
pub(crate) fn bn_affine(
    gamma: &[f32],
    beta: &[f32],
    (mean, var): &BatchMoments,
    eps: f64,
) -> (Vec<f32>, Vec<f32>) {
    let scale: Vec<f32> = (0..gamma.len())
        .map(|ch| (gamma[ch] as f64 / (var[ch] + eps).sqrt()) as f32)
        .collect();
    let shift: Vec<f32> = (0..gamma.len())
        .map(|ch| beta[ch] - (mean[ch] * scale[ch] as f64) as f32)
        .collect();
    (scale, shift)
}

/// BatchNorm's backward from the gradient `dpre` before the activation: `dx`, and
/// `dgamma ‖ dbeta` (`[2C]`).
pub(crate) fn bn_grads(
    x: &Tensor,
    gamma: &Tensor,
    dpre: &Tensor,
    eps: f64,
    moments: Option<BatchMoments>,
) -> Result<(Tensor, Tensor)> {
    let packed = x.apply_op3_no_bwd(gamma, dpre, &BnGrad { eps, moments })?;
    let (numel, c) = (x.elem_count(), gamma.elem_count());
    let dx = packed.narrow(0, 0, numel)?.reshape(x.shape())?;
    Ok((dx, packed.narrow(0, numel, 2 * c)?))
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
        let (y, moments) = bn_act(x, l1.dims(), gamma, beta, self.eps, self.act)?;
        *self.moments.lock().expect("not poisoned") = Some(moments);
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
        let (dx, dparams) = bn_grads(x, gamma, &dpre, self.eps, moments)?;
        let c = gamma.elem_count();
        let (dgamma, dbeta) = (dparams.narrow(0, 0, c)?, dparams.narrow(0, c, c)?);
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
        let centre: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
        let dbeta = channel_totals(g, (n, c, s));
        let dgamma: Vec<f64> = channel_sums((x, g), (n, c, s), &centre, |x, g, m| g * (x - m))
            .iter()
            .zip(&inv_std)
            .map(|(v, i)| v * i)
            .collect();
        // dx = k·(count·g − dbeta − x̂·dgamma) with x̂ = (x − mean)·inv_std, k = γ·inv_std/count,
        // regrouped per channel as a·g + b·(x − mean) + c so the element loop is plain f32.
        let coef: Vec<[f32; 3]> = (0..c)
            .map(|ch| {
                let k = gamma[ch] as f64 * inv_std[ch] / count;
                [
                    (k * count) as f32,
                    (-k * inv_std[ch] * dgamma[ch]) as f32,
                    (-k * dbeta[ch]) as f32,
                ]
            })
            .collect();
        // SAFETY: the samples tile dx and each of their c planes of s is written; then the
        // 2c values of the tail.
        let out = unsafe {
            filled(x.len() + 2 * c, |out| {
                let (dx, tail) = out.split_at_mut(x.len());
                dx.par_chunks_mut(c * s)
                    .zip(x.par_chunks(c * s).zip(g.par_chunks(c * s)))
                    .for_each(|(dxs, (xs, gs))| {
                        let planes = dxs.chunks_exact_mut(s).zip(xs.chunks_exact(s));
                        for (((d, x), g), (&[a, b, k], &m)) in
                            planes.zip(gs.chunks_exact(s)).zip(coef.iter().zip(&centre))
                        {
                            for ((d, &x), &g) in d.iter_mut().zip(x).zip(g) {
                                d.write(a * g + b * (x - m) + k);
                            }
                        }
                    });
                for ch in 0..c {
                    tail[ch].write(dgamma[ch] as f32);
                    tail[c + ch].write(dbeta[ch] as f32);
                }
            })
        };
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
    let moments = moments
        .lock()
        .expect("not poisoned")
        .clone()
        .ok_or_else(|| candle_core::Error::Msg("batch norm ran without statistics".into()))?;
    Ok((y, moments_tensor(moments)?))
}

/// Batch moments as the `[2, C]` tensor (mean, then biased variance) the running-statistics
/// update takes.
pub(crate) fn moments_tensor((mean, var): BatchMoments) -> Result<Tensor> {
    let c = mean.len();
    let values: Vec<f32> = mean.into_iter().chain(var).map(|v| v as f32).collect();
    Tensor::from_vec(values, (2, c), &candle_core::Device::Cpu)
}
