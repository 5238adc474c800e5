//! Nearest-neighbour upsampling by a whole factor (NCHW, f32) as a candle custom op with a
//! backward pass.
//!
//! candle 0.11's `upsample_nearest2d` backward is a grouped convolution with a ones kernel
//! (one group per channel), which its CPU convolution runs far below memory speed; the gradient
//! of a nearest upsample is just each f×f block of the output gradient summed, one pass over it.
//! Work is split by plane (sample × channel), so results do not depend on scheduling.

use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::kernels::conv;
use crate::kernels::storage::{filled, slice};

/// `[N, C, H, W] → [N, C, H·f, W·f]`, every pixel repeated f×f times.
struct Upsample(usize);
/// `[N, C, H·f, W·f] → [N, C, H, W]`, every f×f block summed.
struct BlockSum(usize);

/// `(planes, h, w)` of an `[N, C, H, W]` layout.
fn planes(dims: &[usize]) -> Result<(usize, usize, usize)> {
    match dims {
        [n, c, h, w] => Ok((n * c, *h, *w)),
        _ => bail!("upsample expects [N, C, H, W], got {dims:?}"),
    }
}

impl CustomOp1 for Upsample {
    fn name(&self) -> &'static str {
        "upsample-nearest"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l)?;
        let f = self.0;
        let (p, h, w) = planes(l.dims())?;
        let (oh, ow) = (h * f, w * f);
        // SAFETY: the planes tile the output; each output row is written in full, the first of
        // a group of f from the input row and the other f − 1 as copies of it.
        let y = unsafe {
            filled(p * oh * ow, |y| {
                y.par_chunks_mut(oh * ow)
                    .zip(x.par_chunks(h * w))
                    .for_each(|(yo, xi)| {
                        for (rows, src) in yo.chunks_exact_mut(f * ow).zip(xi.chunks_exact(w)) {
                            let (first, rest) = rows.split_at_mut(ow);
                            for (o, &v) in first.chunks_exact_mut(f).zip(src) {
                                o.iter_mut().for_each(|o| {
                                    o.write(v);
                                });
                            }
                            for copy in rest.chunks_exact_mut(ow) {
                                copy.copy_from_slice(first);
                            }
                        }
                    })
            })
        };
        let (n, c) = (l.dims()[0], l.dims()[1]);
        Ok((CpuStorage::F32(y), Shape::from((n, c, oh, ow))))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(dy.contiguous()?.apply_op1_no_bwd(&BlockSum(self.0))?))
    }
}

impl CustomOp1 for BlockSum {
    fn name(&self) -> &'static str {
        "block-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let dy = slice(s, l)?;
        let f = self.0;
        let (p, oh, ow) = planes(l.dims())?;
        if !oh.is_multiple_of(f) || !ow.is_multiple_of(f) {
            bail!("a {oh}×{ow} gradient is not a whole number of {f}×{f} blocks");
        }
        let (h, w) = (oh / f, ow / f);
        let mut dx = vec![0f32; p * h * w];
        dx.par_chunks_mut(h * w)
            .zip(dy.par_chunks(oh * ow))
            .for_each(|(dxo, dyi)| {
                for (out, rows) in dxo.chunks_exact_mut(w).zip(dyi.chunks_exact(f * ow)) {
                    for row in rows.chunks_exact(ow) {
                        for (o, block) in out.iter_mut().zip(row.chunks_exact(f)) {
                            *o += block.iter().sum::<f32>();
                        }
                    }
                }
            });
        let (n, c) = (l.dims()[0], l.dims()[1]);
        Ok((CpuStorage::F32(dx), Shape::from((n, c, h, w))))
    }
}

/// `x` upsampled `factor` times in both directions by repeating pixels (candle's
/// `upsample_nearest2d` at whole factors), with a one-pass backward.
pub fn upsample_nearest(x: &Tensor, factor: usize) -> Result<Tensor> {
    if factor == 0 {
        bail!("upsample factor must be at least 1");
    }
    x.contiguous()?.apply_op1(Upsample(factor))
}

/// The `[C_in, C_out, 4, 4]` stride-2 transposed-convolution kernel that equals a ×2 nearest
/// upsample followed by a 3×3, stride-1, padding-1 convolution with kernel `w`
/// (`[C_out, C_in, 3, 3]`).
///
/// Output row 2i sees input rows i − 1 (through kernel row 0) and i (rows 1 and 2); row 2i + 1
/// sees rows i (0 and 1) and i + 1 (row 2). A transposed conv's row k reaches output row
/// 2i − 1 + k, so its rows 0..4 are w₂, w₁ + w₂, w₀ + w₁, w₀ (and likewise the columns).
/// Made of candle ops on the small kernel, so the gradient flows back to `w`.
pub fn fold_upsample2_conv3x3(w: &Tensor) -> Result<Tensor> {
    let (cout, cin, kh, kw) = w.dims4()?;
    if (kh, kw) != (3, 3) {
        bail!("the folded upsample takes a 3×3 kernel, not {kh}×{kw}");
    }
    #[rustfmt::skip]
    let fold = Tensor::from_vec(
        vec![
            0f32, 0., 1.,
            0., 1., 1.,
            1., 1., 0.,
            1., 0., 0.,
        ],
        (4, 3),
        w.device(),
    )?;
    fold.broadcast_matmul(&w.reshape((cout * cin, 3, 3))?)?
        .broadcast_matmul(&fold.t()?)?
        .reshape((cout, cin, 4, 4))?
        .transpose(0, 1)?
        .contiguous()
}

/// A ×2 nearest upsample followed by a 3×3, stride-1, padding-1 convolution with kernel `w`, as
/// the one transposed convolution it equals ([`fold_upsample2_conv3x3`]).
pub fn upsample2_conv3x3(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    conv::conv_transpose2d(x, &fold_upsample2_conv3x3(w)?, 2, 1)
}
