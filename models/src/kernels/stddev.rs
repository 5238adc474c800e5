//! ProGAN's minibatch-stddev channel as one candle custom op with a hand-written backward.
//!
//! In candle's ops it is seven ops and a concatenation, each a pass over D's last feature maps on
//! one thread, and their backward as many again (docs/performance.md).

use std::mem::MaybeUninit;

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::kernels::storage::{filled, slice};

/// Added to each feature's variance before the square root, as in the reference.
const EPS: f32 = 1e-8;

/// `[N, C, H, W] → [N, C + 1, H, W]`: the extra channel is the standard deviation of each
/// feature over the batch, averaged over all features.
pub fn minibatch_stddev(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Stddev)
}

struct Stddev;
/// `(x, dy) → dx` of [`Stddev`].
struct StddevGrad;

/// `(n, features, plane)` of an `[N, C, H, W]` layout.
fn dims(l: &Layout) -> Result<(usize, usize, usize)> {
    match l.dims() {
        &[n, c, h, w] if n > 0 => Ok((n, c * h * w, h * w)),
        d => bail!("minibatch stddev expects a non-empty [N, C, H, W], got {d:?}"),
    }
}

/// Each feature's mean and standard deviation over the batch (`x` is `n` rows of `f`).
fn moments(x: &[f32], n: usize, f: usize) -> (Vec<f32>, Vec<f32>) {
    let mut mean = vec![0f32; f];
    for row in x.chunks_exact(f) {
        mean.iter_mut().zip(row).for_each(|(m, &v)| *m += v);
    }
    mean.iter_mut().for_each(|m| *m /= n as f32);
    let mut var = vec![0f32; f];
    for row in x.chunks_exact(f) {
        for ((s, &v), &m) in var.iter_mut().zip(row).zip(&mean) {
            *s += (v - m) * (v - m);
        }
    }
    let std = var.iter().map(|&s| (s / n as f32 + EPS).sqrt()).collect();
    (mean, std)
}

impl CustomOp1 for Stddev {
    fn name(&self) -> &'static str {
        "minibatch-stddev"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l)?;
        let (n, f, plane) = dims(l)?;
        let (_, std) = moments(x, n, f);
        let level = (std.iter().map(|&s| s as f64).sum::<f64>() / f as f64) as f32;
        // SAFETY: every sample's features and extra channel are written in full.
        let y = unsafe {
            filled(n * (f + plane), |y| {
                y.par_chunks_mut(f + plane)
                    .zip(x.par_chunks(f))
                    .for_each(|(y, x)| {
                        let (features, extra) = y.split_at_mut(f);
                        features.iter_mut().zip(x).for_each(|(o, &v)| {
                            o.write(v);
                        });
                        extra.fill(MaybeUninit::new(level));
                    })
            })
        };
        let d = l.dims();
        Ok((CpuStorage::F32(y), Shape::from((n, d[1] + 1, d[2], d[3]))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&dy.contiguous()?, &StddevGrad)?))
    }
}

impl CustomOp2 for StddevGrad {
    fn name(&self) -> &'static str {
        "minibatch-stddev-grad"
    }

    /// dx = dy's first C channels + G · (x − mean) / (N · std · F), G the extra channel's
    /// gradient summed: the mean's own derivative cancels, as Σₙ (x − mean) = 0.
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, dy) = (slice(s1, l1)?, slice(s2, l2)?);
        let (n, f, plane) = dims(l1)?;
        if dy.len() != n * (f + plane) {
            bail!(
                "minibatch stddev gradient {:?} for input {:?}",
                l2.dims(),
                l1.dims()
            );
        }
        let (mean, std) = moments(x, n, f);
        let total: f64 = dy
            .chunks_exact(f + plane)
            .map(|row| row[f..].iter().map(|&v| v as f64).sum::<f64>())
            .sum();
        let g = (total / (n * f) as f64) as f32;
        let scale: Vec<f32> = std.iter().map(|&s| g / s).collect();
        // SAFETY: every sample's f gradients are written.
        let dx = unsafe {
            filled(n * f, |dx| {
                dx.par_chunks_mut(f)
                    .zip(x.par_chunks(f).zip(dy.par_chunks(f + plane)))
                    .for_each(|(dx, (x, dy))| {
                        for i in 0..f {
                            dx[i].write(dy[i] + (x[i] - mean[i]) * scale[i]);
                        }
                    })
            })
        };
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}
