//! Fast CPU Conv2d / ConvTranspose2d (NCHW, f32) as candle custom ops with backward passes.
//!
//! candle 0.11's CPU `conv_transpose2d` and conv backward run at 10–50 GFLOP/s (see
//! ARCHITECTURE.md); lowering every pass onto one GEMM via im2col/col2im runs them at GEMM speed.
//! No crate offers this for candle, so it is written here, on the `gemm` crate candle itself uses.
//!
//! Both convolutions are the same three kernels over an "image side" `[N, c, ih, iw]` seen through
//! k×k windows, a "matrix side" `[N, m, oh, ow]` (one column per window) and the weight as an
//! `[m, c·k·k]` matrix:
//! - `patches_to_matrix`: matrix = W · im2col(image)   (conv forward, transposed-conv input grad)
//! - `matrix_to_patches`: image = col2im(Wᵀ · matrix)  (conv input grad, transposed-conv forward)
//! - `weight_grad`: dW = Σₙ matrix · im2col(image)ᵀ      (both weight grads)
//!
//! Work is split across rayon threads by sample, row or column block: never by the reduction
//! dimension, so results do not depend on the thread count or scheduling (resume stays bit-exact).

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use std::sync::{Arc, Mutex};

use gemm::Parallelism;
use rayon::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvKind {
    /// Conv2d: the input is the image side, weight `[Cout, Cin, k, k]`.
    Conv,
    /// ConvTranspose2d: the output is the image side, weight `[Cin, Cout, k, k]`.
    Transposed,
}

#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    pub kind: ConvKind,
    pub stride: usize,
    pub padding: usize,
}

/// An image `[c, ih, iw]` seen through k×k windows at stride `s` and padding `p`: `oh × ow` windows.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    c: usize,
    ih: usize,
    iw: usize,
    k: usize,
    s: usize,
    p: usize,
    oh: usize,
    ow: usize,
}

impl Geometry {
    fn rows(&self) -> usize {
        self.c * self.k * self.k
    }
    fn cols(&self) -> usize {
        self.oh * self.ow
    }
    fn image(&self) -> usize {
        self.c * self.ih * self.iw
    }

    /// The output columns `lo..hi` whose input column `ox·s + kx − p` lies inside the image.
    fn valid_columns(&self, kx: usize) -> (usize, usize) {
        let (s, p) = (self.s, self.p);
        let lo = p.saturating_sub(kx).div_ceil(s).min(self.ow);
        let hi = if self.iw + p > kx {
            ((self.iw - 1 + p - kx) / s + 1).min(self.ow)
        } else {
            0
        };
        (lo, hi.max(lo))
    }

    /// Fills `dst[..cols]` with im2col row `r` (channel, ky, kx) of one image.
    fn im2col_row(&self, r: usize, img: &[f32], dst: &mut [f32]) {
        let (c, ky, kx) = (r / (self.k * self.k), (r / self.k) % self.k, r % self.k);
        let plane = &img[c * self.ih * self.iw..(c + 1) * self.ih * self.iw];
        let (lo, hi) = self.valid_columns(kx);
        for oy in 0..self.oh {
            let out = &mut dst[oy * self.ow..(oy + 1) * self.ow];
            let iy = (oy * self.s + ky) as isize - self.p as isize;
            if iy < 0 || iy >= self.ih as isize || lo == hi {
                out.fill(0.0);
                continue;
            }
            let src = &plane[iy as usize * self.iw..(iy as usize + 1) * self.iw];
            out[..lo].fill(0.0);
            out[hi..].fill(0.0);
            // Branch-free gather of the valid span: input column of ox is ox·s + kx − p.
            let first = lo * self.s + kx - self.p;
            if self.s == 1 {
                out[lo..hi].copy_from_slice(&src[first..first + (hi - lo)]);
            } else {
                for (o, &v) in out[lo..hi]
                    .iter_mut()
                    .zip(src[first..].iter().step_by(self.s))
                {
                    *o = v;
                }
            }
        }
    }

    /// Adds every window column back onto its pixels (the adjoint of im2col).
    fn col2im(&self, cols: &[f32], img: &mut [f32]) {
        for (r, src) in cols.chunks_exact(self.cols()).enumerate() {
            let (c, ky, kx) = (r / (self.k * self.k), (r / self.k) % self.k, r % self.k);
            let plane = &mut img[c * self.ih * self.iw..(c + 1) * self.ih * self.iw];
            let (lo, hi) = self.valid_columns(kx);
            if lo == hi {
                continue;
            }
            let first = lo * self.s + kx - self.p;
            for oy in 0..self.oh {
                let iy = (oy * self.s + ky) as isize - self.p as isize;
                if iy < 0 || iy >= self.ih as isize {
                    continue;
                }
                let row = &mut plane[iy as usize * self.iw..(iy as usize + 1) * self.iw];
                let src = &src[oy * self.ow + lo..oy * self.ow + hi];
                for (d, &v) in row[first..].iter_mut().step_by(self.s).zip(src) {
                    *d += v;
                }
            }
        }
    }
}

/// A row-major-or-strided matrix operand for `gemm`.
#[derive(Clone, Copy)]
struct Mat {
    ptr: *const f32,
    rs: isize,
    cs: isize,
}

/// `dst[m×n] = a[m×k] · b[k×n]` on one thread (callers parallelise around it).
///
/// # Safety
/// `dst` must be valid for an m×n row-major write with row stride `dst_rs`, and `a`, `b` valid
/// for reads at every index their strides reach.
unsafe fn matmul(m: usize, n: usize, k: usize, dst: *mut f32, dst_rs: usize, a: Mat, b: Mat) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        false,
        a.ptr,
        a.cs,
        a.rs,
        b.ptr,
        b.cs,
        b.rs,
        0.0,
        1.0,
        false,
        false,
        false,
        Parallelism::None,
    )
}

/// Shapes of one call: batch, window geometry, matrix-side channels.
#[derive(Debug, Clone, Copy)]
struct Plan {
    n: usize,
    g: Geometry,
    m: usize,
}

impl Plan {
    fn new(spec: ConvSpec, x: &[usize], w: &[usize]) -> Result<Self> {
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

    fn image_shape(&self) -> Shape {
        (self.n, self.g.c, self.g.ih, self.g.iw).into()
    }
    fn matrix_shape(&self) -> Shape {
        (self.n, self.m, self.g.oh, self.g.ow).into()
    }

    /// im2col of every sample side by side: `[rows, N·cols]`, the layout the weight gradient
    /// needs, so a convolution's forward pass can hand its columns to its backward pass.
    fn patches(&self, image: &[f32]) -> Vec<f32> {
        let (g, n) = (self.g, self.n);
        let (cols, k) = (g.cols(), self.n * g.cols());
        let mut patches = vec![0f32; g.rows() * k];
        patches.par_chunks_mut(k).enumerate().for_each(|(r, dst)| {
            for s in 0..n {
                let img = &image[s * g.image()..(s + 1) * g.image()];
                g.im2col_row(r, img, &mut dst[s * cols..(s + 1) * cols]);
            }
        });
        patches
    }

    /// matrix[n] = W · patches[:, n] for columns from [`Plan::patches`].
    fn patches_to_matrix(&self, patches: &[f32], w: &[f32]) -> Vec<f32> {
        let (g, m) = (self.g, self.m);
        let (rows, cols, k) = (g.rows(), g.cols(), self.n * g.cols());
        let mut out = vec![0f32; self.n * m * cols];
        out.par_chunks_mut(m * cols)
            .enumerate()
            .for_each(|(s, dst)| {
                let a = Mat {
                    ptr: w.as_ptr(),
                    rs: rows as isize,
                    cs: 1,
                };
                let b = Mat {
                    ptr: patches[s * cols..].as_ptr(),
                    rs: k as isize,
                    cs: 1,
                };
                // SAFETY: dst is m×cols; w is m×rows; b reads rows×cols with row stride N·cols.
                unsafe { matmul(m, cols, rows, dst.as_mut_ptr(), cols, a, b) }
            });
        out
    }

    /// image[n] = col2im(Wᵀ · matrix[n]).
    fn matrix_to_patches(&self, matrix: &[f32], w: &[f32]) -> Vec<f32> {
        let (g, m) = (self.g, self.m);
        let (rows, cols) = (g.rows(), g.cols());
        let mut out = vec![0f32; self.n * g.image()];
        out.par_chunks_mut(g.image())
            .zip(matrix.par_chunks(m * cols))
            .for_each_init(
                || vec![0f32; rows * cols],
                |buf, (img, mat)| {
                    let a = Mat {
                        ptr: w.as_ptr(),
                        rs: 1,
                        cs: rows as isize,
                    };
                    let b = Mat {
                        ptr: mat.as_ptr(),
                        rs: cols as isize,
                        cs: 1,
                    };
                    // SAFETY: buf is rows×cols; Wᵀ reads w (m×rows) transposed; mat is m×cols.
                    unsafe { matmul(rows, cols, m, buf.as_mut_ptr(), cols, a, b) }
                    g.col2im(buf, img);
                },
            );
        out
    }

    /// dW = Σₙ matrix[n] · im2col(image[n])ᵀ, as one GEMM with the batch folded into K
    /// (`patches` from [`Plan::patches`]).
    fn weight_grad(&self, matrix: &[f32], patches: &[f32]) -> Vec<f32> {
        let (g, m, n) = (self.g, self.m, self.n);
        let (rows, cols) = (g.rows(), g.cols());
        let k = n * cols;
        // matrix [N, m, cols] → [m, N·cols]
        let mut mt = vec![0f32; m * k];
        mt.par_chunks_mut(k).enumerate().for_each(|(i, dst)| {
            for s in 0..n {
                let src = &matrix[(s * m + i) * cols..(s * m + i + 1) * cols];
                dst[s * cols..(s + 1) * cols].copy_from_slice(src);
            }
        });
        let mut dw = vec![0f32; m * rows];
        let blocks = (rayon::current_num_threads() * 2).clamp(1, rows);
        let width = rows.div_ceil(blocks);
        let dw_ptr = SendPtr(dw.as_mut_ptr());
        (0..rows.div_ceil(width)).into_par_iter().for_each(|b| {
            let r0 = b * width;
            let nr = width.min(rows - r0);
            let a = Mat {
                ptr: mt.as_ptr(),
                rs: k as isize,
                cs: 1,
            };
            // patches transposed: element (j, r) at r·k + j.
            let bt = Mat {
                ptr: patches[r0 * k..].as_ptr(),
                rs: 1,
                cs: k as isize,
            };
            // SAFETY: each block writes columns r0..r0+nr of dw (m×rows), disjoint across blocks.
            unsafe { matmul(m, nr, k, dw_ptr.get().add(r0), rows, a, bt) }
        });
        dw
    }
}

/// A raw pointer that may cross threads: used only for disjoint column blocks of one output.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// The f32 data of a contiguous CPU tensor (the fast ops make their inputs contiguous first).
pub(crate) fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        bail!("fast CPU ops support f32 only")
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("fast CPU ops need contiguous tensors"),
    }
}

/// The convolution itself: `(input, weight) → output`. A Conv2d keeps its im2col columns for
/// its own weight gradient (they are the same numbers; recomputing them cost ~15 % of a step).
struct Forward {
    spec: ConvSpec,
    patches: Mutex<Option<Arc<Vec<f32>>>>,
}
/// `(grad_output, weight) → grad_input`, for the input of shape `.1`.
struct GradInput(ConvSpec, [usize; 4]);
/// `(input, grad_output) → grad_weight`, for the weight of shape `.1`, reusing the forward pass's
/// columns when it has them.
struct GradWeight(ConvSpec, [usize; 4], Option<Arc<Vec<f32>>>);

impl CustomOp2 for Forward {
    fn name(&self) -> &'static str {
        "fast-conv"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let plan = Plan::new(self.spec, l1.dims(), l2.dims())?;
        let (x, w) = (slice(s1, l1)?, slice(s2, l2)?);
        Ok(match self.spec.kind {
            ConvKind::Conv => {
                let patches = plan.patches(x);
                let y = plan.patches_to_matrix(&patches, w);
                *self.patches.lock().expect("not poisoned") = Some(Arc::new(patches));
                (CpuStorage::F32(y), plan.matrix_shape())
            }
            ConvKind::Transposed => (
                CpuStorage::F32(plan.matrix_to_patches(x, w)),
                plan.image_shape(),
            ),
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let dims = |t: &Tensor| -> Result<[usize; 4]> {
            let (a, b, c, d) = t.dims4()?;
            Ok([a, b, c, d])
        };
        // Inputs that lead to no variable (real images, detached fakes) get no gradient.
        let dx = if x.track_op() {
            Some(dy.apply_op2_no_bwd(w, &GradInput(self.spec, dims(x)?))?)
        } else {
            None
        };
        let dw = if w.track_op() {
            let patches = self.patches.lock().expect("not poisoned").clone();
            Some(x.apply_op2_no_bwd(&dy, &GradWeight(self.spec, dims(w)?, patches))?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

impl CustomOp2 for GradInput {
    fn name(&self) -> &'static str {
        "fast-conv-grad-input"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let plan = Plan::new(self.0, &self.1, l2.dims())?;
        let (dy, w) = (slice(s1, l1)?, slice(s2, l2)?);
        Ok(match self.0.kind {
            ConvKind::Conv => (
                CpuStorage::F32(plan.matrix_to_patches(dy, w)),
                plan.image_shape(),
            ),
            ConvKind::Transposed => (
                CpuStorage::F32(plan.patches_to_matrix(&plan.patches(dy), w)),
                plan.matrix_shape(),
            ),
        })
    }
}

impl CustomOp2 for GradWeight {
    fn name(&self) -> &'static str {
        "fast-conv-grad-weight"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let plan = Plan::new(self.0, l1.dims(), &self.1)?;
        let (x, dy) = (slice(s1, l1)?, slice(s2, l2)?);
        let dw = match (self.0.kind, &self.2) {
            (ConvKind::Conv, Some(patches)) => plan.weight_grad(dy, patches),
            (ConvKind::Conv, None) => plan.weight_grad(dy, &plan.patches(x)),
            (ConvKind::Transposed, _) => plan.weight_grad(x, &plan.patches(dy)),
        };
        Ok((CpuStorage::F32(dw), Shape::from(self.1.to_vec())))
    }
}

fn apply(kind: ConvKind, x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let spec = ConvSpec {
        kind,
        stride,
        padding,
    };
    let op = Forward {
        spec,
        patches: Mutex::new(None),
    };
    x.contiguous()?.apply_op2(&w.contiguous()?, op)
}

/// Conv2d (no bias, dilation 1, groups 1) on CPU f32 tensors.
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    apply(ConvKind::Conv, x, w, stride, padding)
}

/// ConvTranspose2d (no bias, no output padding, dilation 1) on CPU f32 tensors.
pub fn conv_transpose2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    apply(ConvKind::Transposed, x, w, stride, padding)
}
