//! DiffAugment's per-sample recolouring, shift and cut-out as one candle custom op whose backward
//! is the transform's adjoint, one pass each way, parallel over samples.
//!
//! Built from candle's ops the same transform is a dozen broadcast ops and a gather, which run
//! on one thread in the fast path's process while the other cores wait, and whose backward adds
//! strided reductions and an index-add: a tenth of a half-width faces step (docs/performance.md).
//! Every part is linear in the image, so the backward needs only the drawn parameters.

use std::sync::Arc;

use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::kernels::fused::lane_sum;
use crate::kernels::storage::{slice, zeroed};

/// What one sample's augmentation was drawn to be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleDraw {
    /// Brightness offset, saturation factor and contrast factor, applied in that order;
    /// `None` keeps the colours.
    pub colour: Option<[f32; 3]>,
    /// `(dy, dx)`: output pixel (y, x) comes from input (y − dy, x − dx); zero where that is
    /// outside the image.
    pub shift: (i64, i64),
    /// Top-left corner of the zeroed square; it may hang over the border.
    pub cut_at: (i64, i64),
}

/// A batch's draws and the cut-out square's side (rows, columns).
#[derive(Debug, Clone, PartialEq)]
pub struct Augmentation {
    pub samples: Vec<SampleDraw>,
    pub cut: (usize, usize),
}

/// `x` (`[N, C, H, W]`, f32 on the CPU) augmented as `draws` says, with its backward.
pub fn augment(x: &Tensor, draws: Arc<Augmentation>) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Augment(draws))
}

struct Augment(Arc<Augmentation>);
/// The adjoint: the gradient of [`Augment`]'s input from its output's.
struct Adjoint(Arc<Augmentation>);

/// `(n, c, h, w)`, checked against the draws.
fn dims(l: &Layout, draws: &Augmentation) -> Result<(usize, usize, usize, usize)> {
    let &[n, c, h, w] = l.dims() else {
        bail!("augment expects [N, C, H, W], got {:?}", l.dims())
    };
    if n != draws.samples.len() {
        bail!(
            "{} augmentation draws for a batch of {n}",
            draws.samples.len()
        );
    }
    Ok((n, c, h, w))
}

/// Runs `each(draw, input sample, output sample, (h, w))` over the batch in parallel, into a
/// zeroed output.
fn per_sample(
    x: &[f32],
    l: &Layout,
    draws: &Augmentation,
    each: impl Fn(&SampleDraw, &[f32], &mut [f32], (usize, usize)) + Sync,
) -> Result<(CpuStorage, Shape)> {
    let (n, c, h, w) = dims(l, draws)?;
    let len = c * h * w;
    let mut out = zeroed(n * len);
    out.par_chunks_mut(len)
        .zip(x.par_chunks(len))
        .zip(&draws.samples)
        .for_each(|((o, x), d)| each(d, x, o, (h, w)));
    Ok((CpuStorage::F32(out), l.shape().clone()))
}

/// `[lo, hi)` clamped to a side: the output positions whose source (position − shift) lies
/// inside `[0, side)`.
fn shifted(side: usize, shift: i64) -> std::ops::Range<usize> {
    let clamp = |v: i64| v.clamp(0, side as i64) as usize;
    clamp(shift)..clamp(side as i64 + shift)
}

/// `within` less `[from, from + len)`, as the two spans before and after it (either may be
/// empty).
fn less(within: std::ops::Range<usize>, from: i64, len: usize) -> [std::ops::Range<usize>; 2] {
    let clamp = |v: i64| v.clamp(within.start as i64, within.end as i64) as usize;
    let (a, b) = (clamp(from), clamp(from + len as i64));
    [within.start..a, b..within.end]
}

/// Copies the pixels of one plane that survive the shift and cut-out: source → output
/// position (`forward`) or output → source position (the adjoint). Pixels not copied keep
/// their value (zero).
fn move_plane(
    d: &SampleDraw,
    (h, w): (usize, usize),
    cut: (usize, usize),
    src: &[f32],
    dst: &mut [f32],
    forward: bool,
) {
    let (dy, dx) = d.shift;
    let cols = shifted(w, dx);
    let cut_rows = d.cut_at.0..d.cut_at.0 + cut.0 as i64;
    for y in shifted(h, dy) {
        let sy = (y as i64 - dy) as usize;
        let spans = if cut_rows.contains(&(y as i64)) {
            less(cols.clone(), d.cut_at.1, cut.1)
        } else {
            [cols.clone(), 0..0]
        };
        for span in spans.into_iter().filter(|s| !s.is_empty()) {
            let out = y * w + span.start..y * w + span.end;
            let from = sy * w + (span.start as i64 - dx) as usize;
            let from = from..from + span.len();
            if forward {
                dst[out].copy_from_slice(&src[from]);
            } else {
                dst[from].copy_from_slice(&src[out]);
            }
        }
    }
}

/// Saturation: every pixel's channels pulled towards (factor < 1) or pushed past their mean,
/// `v ← s·v + (1 − s)·mean over channels`, in place on one sample's `[C, hw]` values. The map
/// is symmetric, so it is its own adjoint.
fn saturate(v: &mut [f32], hw: usize, s: f32) {
    let channels = (v.len() / hw) as f32;
    let mut mean = vec![0f32; hw];
    for plane in v.chunks_exact(hw) {
        mean.iter_mut().zip(plane).for_each(|(m, &p)| *m += p);
    }
    mean.iter_mut().for_each(|m| *m *= (1.0 - s) / channels);
    for plane in v.chunks_exact_mut(hw) {
        plane
            .iter_mut()
            .zip(&mean)
            .for_each(|(p, &m)| *p = *p * s + m);
    }
}

/// Contrast: `v ← k·v + (1 − k)·mean`, the mean over the whole sample, in place; symmetric,
/// so its own adjoint too.
fn contrast(v: &mut [f32], k: f32) {
    let shift = (lane_sum(v, v, |a, _| a) / v.len() as f64) as f32 * (1.0 - k);
    v.iter_mut().for_each(|p| *p = *p * k + shift);
}

impl CustomOp1 for Augment {
    fn name(&self) -> &'static str {
        "diff-augment"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let cut = self.0.cut;
        per_sample(slice(s, l)?, l, &self.0, |d, x, out, (h, w)| {
            let hw = h * w;
            let recoloured;
            let x = match d.colour {
                None => x,
                Some([b, s, k]) => {
                    let mut v: Vec<f32> = x.iter().map(|&v| v + b).collect();
                    saturate(&mut v, hw, s);
                    contrast(&mut v, k);
                    recoloured = v;
                    &recoloured[..]
                }
            };
            for (o, x) in out.chunks_exact_mut(hw).zip(x.chunks_exact(hw)) {
                move_plane(d, (h, w), cut, x, o, true);
            }
        })
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            dy.contiguous()?
                .apply_op1_no_bwd(&Adjoint(self.0.clone()))?,
        ))
    }
}

impl CustomOp1 for Adjoint {
    fn name(&self) -> &'static str {
        "diff-augment-adjoint"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let cut = self.0.cut;
        per_sample(slice(s, l)?, l, &self.0, |d, dy, dx, (h, w)| {
            let hw = h * w;
            for (o, g) in dx.chunks_exact_mut(hw).zip(dy.chunks_exact(hw)) {
                move_plane(d, (h, w), cut, g, o, false);
            }
            // The forward's steps in reverse; brightness passes the gradient as is.
            if let Some([_, s, k]) = d.colour {
                contrast(dx, k);
                saturate(dx, hw, s);
            }
        })
    }
}
