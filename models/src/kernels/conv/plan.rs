//! The three GEMM lowerings of one convolution call: im2col · W, Wᵀ · matrix → col2im, and
//! the weight gradient; how each splits across threads and where its columns come from.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use candle_core::{bail, Result, Shape};

use super::geometry::Geometry;
use super::transpose::{channel_major, transpose, transpose_block};
use super::{ConvKind, ConvSpec};
use crate::kernels::gemm::{matmul, matmul_add, Mat, MatMut};
use crate::kernels::storage::{filled, zero_init};

/// Where a GEMM's im2col columns come from.
#[derive(Clone, Copy)]
pub(super) enum Source<'a> {
    /// Built for the whole batch by [`Plan::patches`] (`[rows, N·cols]`).
    Batch(&'a [f32]),
    /// Built per group of samples from these images, inside the thread that uses them.
    Images(&'a [f32]),
}

/// Positions per sample from which a layer's columns are built per sample group, in cache,
/// instead of for the whole batch: the 64×64 DCGAN's 32×32 and 64×64 layers, whose batch
/// columns (13–67 MB) otherwise go out to memory and back.
pub(super) const STREAM_MIN_COLS: usize = 256;
/// The pieces a weight gradient is split into across threads: fixed sample chunks summed in
/// order, or fixed blocks of its columns (shape-only, so the result does not depend on the
/// thread count).
pub(super) const WEIGHT_CHUNKS: usize = 8;
/// dW columns (image-side channels × k²) below which a batch weight gradient splits its
/// reduction into [`WEIGHT_CHUNKS`] instead of its columns: split by columns across threads,
/// MNIST G's last layer (16 columns) ran 4-column GEMMs, bound by loading the other operand.
pub(super) const SPLIT_K_BELOW_ROWS: usize = 48;

/// The width below which a GEMM over one sample's positions runs far below GEMM speed, so that
/// several samples share one ([`Plan::group`]).
const MIN_COLUMNS: usize = 192;

/// f32 lanes of the vector registers gemm's microkernels use on this CPU, read at run time.
fn vector_lanes() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return 16;
        }
        if std::is_x86_feature_detected!("avx2") {
            return 8;
        }
    }
    4
}

/// Shapes of one call: batch, window geometry, matrix-side channels.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    pub(super) n: usize,
    pub(super) g: Geometry,
    pub(super) m: usize,
}

impl Plan {
    pub(super) fn new(spec: ConvSpec, x: &[usize], w: &[usize]) -> Result<Self> {
        let (&[n, cin, h, wd], &[w0, w1, k, k2]) = (x, w) else {
            bail!("fast conv expects 4-d input and weight, got {x:?} and {w:?}")
        };
        if k != k2 || spec.stride == 0 {
            bail!("fast conv needs a square kernel and stride ≥ 1, got {w:?}");
        }
        let (s, p) = (spec.stride, spec.padding);
        match spec.kind {
            ConvKind::Conv => {
                if w1 != cin || h + 2 * p < k || wd + 2 * p < k {
                    bail!("conv2d input {x:?} does not fit weight {w:?}");
                }
                let (oh, ow) = ((h + 2 * p - k) / s + 1, (wd + 2 * p - k) / s + 1);
                let g = Geometry {
                    c: cin,
                    ih: h,
                    iw: wd,
                    k,
                    s,
                    p,
                    oh,
                    ow,
                };
                Ok(Plan { n, g, m: w0 })
            }
            ConvKind::Transposed => {
                if w0 != cin || (h - 1) * s + k <= 2 * p {
                    bail!("conv_transpose2d input {x:?} does not fit weight {w:?}");
                }
                let (ih, iw) = ((h - 1) * s + k - 2 * p, (wd - 1) * s + k - 2 * p);
                let g = Geometry {
                    c: w1,
                    ih,
                    iw,
                    k,
                    s,
                    p,
                    oh: h,
                    ow: wd,
                };
                Ok(Plan { n, g, m: cin })
            }
        }
    }

    pub(super) fn image_shape(&self) -> Shape {
        (self.n, self.g.c, self.g.ih, self.g.iw).into()
    }
    pub(super) fn matrix_shape(&self) -> Shape {
        (self.n, self.m, self.g.oh, self.g.ow).into()
    }

    /// im2col of every sample side by side: `[rows, N·cols]`, the layout the weight gradient
    /// needs, so a convolution's forward pass can hand its columns to its backward pass.
    pub(super) fn patches(&self, image: &[f32]) -> Vec<f32> {
        let (g, n) = (self.g, self.n);
        let k = n * g.cols();
        let image = &image[..n * g.image()];
        let planes = if g.phased() {
            // SAFETY: split_phases writes every element of each sample's planes.
            unsafe {
                filled(n * g.phased_len(), |planes| {
                    planes
                        .par_chunks_mut(g.phased_len())
                        .zip(image.par_chunks(g.image()))
                        .for_each(|(planes, image)| g.split_phases(image, planes))
                })
            }
        } else {
            Vec::new()
        };
        // SAFETY: im2col_row and phased_row write every element of their row, and the rows
        // tile the vector.
        unsafe {
            filled(g.rows() * k, |patches| {
                patches.par_chunks_mut(k).enumerate().for_each(|(r, dst)| {
                    if g.phased() {
                        g.phased_row(r, &planes, dst)
                    } else {
                        g.im2col_row(r, image, dst)
                    }
                })
            })
        }
    }

    /// Samples per GEMM: a layer with few output positions (4×4, 1×1) would otherwise run one
    /// thin GEMM per sample, far below GEMM speed. Of the group sizes that reach a width of
    /// [`MIN_COLUMNS`], the first whose width fills whole vector registers (gemm runs a GEMM
    /// with a row-major output as its transpose, so the width is what its microkernel tiles by
    /// vectors: at 7×7 positions, 4 samples left a 4-float tail that took a tenth of MNIST's
    /// GEMM time). Depends on the shapes and the CPU's vector width, never on the thread
    /// count, so results stay bit-identical across thread counts.
    pub(super) fn group(&self) -> usize {
        let cols = self.g.cols();
        let (fewest, most) = (MIN_COLUMNS.div_ceil(cols), (self.n / 4).max(1));
        let lanes = vector_lanes();
        (fewest..=most)
            .find(|g| (g * cols).is_multiple_of(lanes))
            .unwrap_or(fewest)
            .clamp(1, most)
    }

    /// Whether this layer's columns are built per sample group ([`STREAM_MIN_COLS`]).
    pub(super) fn streams(&self) -> bool {
        self.g.cols() >= STREAM_MIN_COLS
    }

    /// matrix[n] = W · im2col(image[n]), a group of samples per GEMM.
    pub(super) fn im2col_gemm(&self, source: Source, w: &[f32]) -> Vec<f32> {
        let len = self.n * self.m * self.g.cols();
        // SAFETY: each group's GEMM (or the copy after it) writes all of its m × cols blocks.
        unsafe { filled(len, |out| self.patches_to_matrix_into(source, w, out)) }
    }

    pub(super) fn patches_to_matrix_into(
        &self,
        source: Source,
        w: &[f32],
        out: &mut [MaybeUninit<f32>],
    ) {
        let (g, m, group) = (self.g, self.m, self.group());
        let (rows, cols, k) = (g.rows(), g.cols(), self.n * g.cols());
        out.par_chunks_mut(group * m * cols)
            .enumerate()
            .for_each_init(
                || (Vec::new(), Vec::new(), Vec::new()),
                |(tmp, columns, scratch), (gi, dst)| {
                    let width = dst.len() / m;
                    let a = Mat::of(w, rows as isize, 1);
                    let b = match source {
                        Source::Batch(patches) => {
                            Mat::of(&patches[gi * group * cols..], k as isize, 1)
                        }
                        Source::Images(images) => {
                            let first = gi * group * g.image();
                            let images = &images[first..first + width / cols * g.image()];
                            columns.resize(rows * width, MaybeUninit::uninit());
                            g.im2col(images, columns, scratch);
                            // im2col writes every element of `columns`.
                            Mat::of(columns, width as isize, 1)
                        }
                    };
                    if width == cols {
                        // SAFETY: dst is m×cols (written, never read: beta 0); w is m×rows; b reads
                        // rows×cols at its row stride.
                        unsafe { matmul(m, cols, rows, MatMut::row_major(dst, cols), a, b) }
                        return;
                    }
                    tmp.resize(m * width, 0.0);
                    // SAFETY: tmp is m×width; b reads rows×width at its row stride.
                    unsafe { matmul(m, width, rows, MatMut::row_major(tmp, width), a, b) }
                    // [m, samples·cols] → [samples, m, cols]
                    for (i, row) in tmp.chunks_exact(width).enumerate() {
                        for (s, src) in row.chunks_exact(cols).enumerate() {
                            let out = &mut dst[(s * m + i) * cols..(s * m + i + 1) * cols];
                            for (o, &v) in out.iter_mut().zip(src) {
                                o.write(v);
                            }
                        }
                    }
                },
            );
    }

    /// image[n] = col2im(Wᵀ · matrix[n]), a group of samples per GEMM.
    pub(super) fn gemm_col2im(&self, matrix: &[f32], w: &[f32]) -> Vec<f32> {
        let (g, m) = (self.g, self.m);
        let rows = g.rows();
        // Wᵀ laid out once per call: gemm reads it in place, where W itself (k-stride `rows`)
        // would be packed again by every group's GEMM.
        let mut wt = vec![0f32; rows * m];
        transpose(w, m, rows, &mut wt);
        // SAFETY: every group's images are written in full below: merged from the planes, or
        // zero-filled first where the planes do not hold every pixel or there are none.
        unsafe {
            filled(self.n * g.image(), |out| {
                self.col2im_groups(matrix, &wt, out);
            })
        }
    }

    fn col2im_groups(&self, matrix: &[f32], wt: &[f32], out: &mut [MaybeUninit<f32>]) {
        let (g, m, group) = (self.g, self.m, self.group());
        let (rows, cols) = (g.rows(), g.cols());
        out.par_chunks_mut(group * g.image())
            .zip(matrix.par_chunks(group * m * cols))
            .for_each_init(
                || (Vec::new(), Vec::new(), Vec::new()),
                |(buf, gathered, planes), (img, mat)| {
                    let samples = img.len() / g.image();
                    let width = samples * cols;
                    // Already channel-major for one sample.
                    let b = if samples == 1 {
                        mat
                    } else {
                        gathered.resize(m * width, 0.0);
                        channel_major(mat, m, cols, gathered);
                        &gathered[..]
                    };
                    buf.resize(rows * width, 0.0);
                    let a = Mat::of(wt, m as isize, 1);
                    let b = Mat::of(b, width as isize, 1);
                    // SAFETY: buf is rows×width; wt is rows×m; b is m×width.
                    unsafe { matmul(rows, width, m, MatMut::row_major(buf, width), a, b) }
                    if !g.phased() {
                        g.col2im(buf, width, zero_init(img));
                        return;
                    }
                    planes.clear();
                    planes.resize(samples * g.phased_len(), 0.0);
                    g.phased_col2im(buf, width, planes);
                    if !g.planes_hold_every_pixel() {
                        zero_init(img);
                    }
                    for (image, planes) in img
                        .chunks_exact_mut(g.image())
                        .zip(planes.chunks_exact(g.phased_len()))
                    {
                        g.merge_phases(planes, image);
                    }
                },
            );
    }

    /// dW = Σₙ matrix[n] · im2col(image[n])ᵀ, with the batch folded into K (`patches` from
    /// [`Plan::patches`]). gemm reads both operands along their contiguous dimension: the
    /// matrix side transposed per sample to `[N·cols, m]`, and dW written column-major, then
    /// transposed. In their natural layouts gemm packed the patches (rows × K, rows K floats
    /// apart), a cost docs/performance.md measures. Split across threads by blocks of dW's
    /// columns, or, where dW has too few of them ([`SPLIT_K_BELOW_ROWS`]), by fixed chunks
    /// of samples summed in order.
    pub(super) fn weight_grad(&self, matrix: &[f32], patches: &[f32]) -> Vec<f32> {
        let (g, m, n) = (self.g, self.m, self.n);
        let (rows, cols) = (g.rows(), g.cols());
        let k = n * cols;
        let mut mt = vec![0f32; k * m];
        mt.par_chunks_mut(cols * m)
            .zip(matrix.par_chunks(m * cols))
            .for_each(|(dst, src)| transpose_block(src, m, cols, 0, dst));
        let dwt = if rows < SPLIT_K_BELOW_ROWS {
            let per = n.div_ceil(WEIGHT_CHUNKS) * cols;
            let partials: Vec<Vec<f32>> = mt
                .par_chunks(per * m)
                .enumerate()
                .map(|(c, a)| {
                    let mut part = vec![0f32; rows * m];
                    let a = Mat::of(a, 1, m as isize);
                    let bt = Mat::of(&patches[c * per..], 1, k as isize);
                    let out = MatMut::of(&mut part, 1, m as isize);
                    // SAFETY: part is the column-major m × rows dW; a is m × (its length / m)
                    // column-major; the patches are rows × k, read from column c·per.
                    unsafe { matmul(m, rows, a.data.len() / m, out, a, bt) }
                    part
                })
                .collect();
            sum_in_order(partials, rows * m)
        } else {
            // Fixed blocks, not one per thread: gemm picks its K blocking from the GEMM's
            // width, so a width that followed the thread count changed the rounding.
            let width = rows.div_ceil(WEIGHT_CHUNKS);
            let mut dwt = vec![0f32; rows * m];
            dwt.par_chunks_mut(width * m)
                .enumerate()
                .for_each(|(b, dst)| {
                    let a = Mat::of(&mt, 1, m as isize);
                    // Columns b·width.. of im2col(image)ᵀ: element (j, r) at r·k + j.
                    let bt = Mat::of(&patches[b * width * k..], 1, k as isize);
                    let n = dst.len() / m;
                    let out = MatMut::of(dst, 1, m as isize);
                    // SAFETY: dst holds columns b·width.. of the column-major m × rows dW; mt is
                    // m × k column-major; the patches are rows × k.
                    unsafe { matmul(m, n, k, out, a, bt) }
                });
            dwt
        };
        let mut dw = vec![0f32; m * rows];
        transpose(&dwt, rows, m, &mut dw);
        dw
    }

    /// [`Plan::weight_grad`] with the columns built per sample inside each thread (layers that
    /// [`Plan::streams`]), summed per [`WEIGHT_CHUNKS`] chunk and the chunks added in order.
    /// As there, both operands reach gemm along their contiguous dimension: each sample's
    /// matrix side is transposed to `[cols, m]` first, since gemm's own packing of it
    /// (a strided gather per sample) took longer than the product on the small-channel layers
    /// (docs/performance.md).
    pub(super) fn weight_grad_streamed(&self, matrix: &[f32], images: &[f32]) -> Vec<f32> {
        let (g, m) = (self.g, self.m);
        let (rows, cols) = (g.rows(), g.cols());
        let per = self.n.div_ceil(WEIGHT_CHUNKS);
        let partials: Vec<Vec<f32>> = images[..self.n * g.image()]
            .par_chunks(per * g.image())
            .zip(matrix.par_chunks(per * m * cols))
            .map(|(images, matrices)| {
                let mut sum = vec![0f32; m * rows];
                let mut columns = vec![MaybeUninit::uninit(); rows * cols];
                let mut dyt = vec![0f32; cols * m];
                let mut scratch = Vec::new();
                let samples = images
                    .chunks_exact(g.image())
                    .zip(matrices.chunks_exact(m * cols));
                for (s, (image, dy)) in samples.enumerate() {
                    g.im2col(image, &mut columns, &mut scratch);
                    transpose_block(dy, m, cols, 0, &mut dyt);
                    let a = Mat::of(&dyt, 1, m as isize);
                    // im2col(image)ᵀ: element (j, r) at r·cols + j; written in full above.
                    let bt = Mat::of(&columns, 1, cols as isize);
                    let out = MatMut::of(&mut sum, 1, m as isize);
                    // SAFETY: sum is the column-major m×rows dW (initialised: zeros, then
                    // earlier products); dyt is m×cols column-major; the columns are rows×cols.
                    unsafe { matmul_add(m, rows, cols, out, a, bt, s > 0) }
                }
                sum
            })
            .collect();
        let sum = sum_in_order(partials, m * rows);
        let mut dw = vec![0f32; m * rows];
        transpose(&sum, rows, m, &mut dw);
        dw
    }
}

/// The element-wise sum of `parts` (each `len` long), added in order so the result depends on
/// the chunking only, never on which thread finished first.
fn sum_in_order(parts: Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    let mut parts = parts.into_iter();
    let mut sum = parts.next().unwrap_or_else(|| vec![0f32; len]);
    for part in parts {
        for (d, p) in sum.iter_mut().zip(&part) {
            *d += p;
        }
    }
    sum
}
