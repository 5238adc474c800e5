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
//! Layers with few positions per sample build im2col for the whole batch once, and a Conv2d
//! hands its columns from the forward to the backward pass; layers with many (16×16 and up)
//! build them per sample group inside the thread that multiplies them, so the 13–67 MB batch
//! columns never go out to memory and back. At stride 2 the columns come from the image's 2×2
//! phase planes (`Geometry::phased`), so they are contiguous copies.
//!
//! Work is split across rayon threads by sample, row or column block: never by the reduction
//! dimension (a streamed weight gradient sums fixed chunks of samples, added in order), so
//! results do not depend on scheduling (resume stays bit-exact).

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use std::mem::MaybeUninit;
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

/// Defines the method `$name` as `$any` compiled with AVX2 where the CPU has it (chosen at run
/// time): the crate's baseline x86-64 build leaves these loops scalar or SSE2, and LLVM
/// vectorises them (stride-2 loops as shuffles) once AVX2 is enabled. `$any` must be
/// `#[inline(always)]` so that it is compiled into the AVX2 function.
macro_rules! with_avx2 {
    ($(#[$doc:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)*) => $any:ident) => {
        $(#[$doc])*
        fn $name(&self $(, $arg: $ty)*) {
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                #[target_feature(enable = "avx2")]
                unsafe fn avx2(g: &Geometry $(, $arg: $ty)*) {
                    g.$any($($arg),*)
                }
                // SAFETY: the CPU has AVX2.
                return unsafe { avx2(self $(, $arg)*) };
            }
            self.$any($($arg),*)
        }
    };
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

    /// Fills `dst` (`[samples · cols]`) with im2col row `r` (channel, ky, kx) of every image in
    /// `images`, samples side by side; the row's geometry is worked out once for all of them.
    fn im2col_row(&self, r: usize, images: &[f32], dst: &mut [MaybeUninit<f32>]) {
        let (c, ky, kx) = (r / (self.k * self.k), (r / self.k) % self.k, r % self.k);
        let (lo, hi) = self.valid_columns(kx);
        // Input column of ox is ox·s + kx − p.
        let first = (lo * self.s + kx).saturating_sub(self.p);
        let plane_len = self.ih * self.iw;
        let samples = images
            .chunks_exact(self.image())
            .zip(dst.chunks_exact_mut(self.cols()));
        for (img, dst) in samples {
            let plane = &img[c * plane_len..(c + 1) * plane_len];
            for (oy, out) in dst.chunks_exact_mut(self.ow).enumerate() {
                let iy = (oy * self.s + ky) as isize - self.p as isize;
                let zero = MaybeUninit::new(0.0);
                if iy < 0 || iy >= self.ih as isize || lo == hi {
                    out.fill(zero);
                    continue;
                }
                let src = &plane[iy as usize * self.iw..(iy as usize + 1) * self.iw];
                out[..lo].fill(zero);
                out[hi..].fill(zero);
                let span = src[first..].iter().step_by(self.s);
                for (o, &v) in out[lo..hi].iter_mut().zip(span) {
                    o.write(v);
                }
            }
        }
    }

    /// Adds every window column back onto its pixels (the adjoint of im2col) for the images in
    /// `images`; row `r` of the columns starts at `r · stride`, samples side by side in it.
    fn col2im(&self, cols: &[f32], stride: usize, images: &mut [f32]) {
        let plane_len = self.ih * self.iw;
        for r in 0..self.rows() {
            let (c, ky, kx) = (r / (self.k * self.k), (r / self.k) % self.k, r % self.k);
            let (lo, hi) = self.valid_columns(kx);
            if lo == hi {
                continue;
            }
            let first = lo * self.s + kx - self.p;
            let row = &cols[r * stride..];
            for (img, src) in images
                .chunks_exact_mut(self.image())
                .zip(row.chunks(self.cols()))
            {
                let plane = &mut img[c * plane_len..(c + 1) * plane_len];
                for oy in 0..self.oh {
                    let iy = (oy * self.s + ky) as isize - self.p as isize;
                    if iy < 0 || iy >= self.ih as isize {
                        continue;
                    }
                    let dst = &mut plane[iy as usize * self.iw..(iy as usize + 1) * self.iw];
                    let src = &src[oy * self.ow + lo..oy * self.ow + hi];
                    for (d, &v) in dst[first..].iter_mut().step_by(self.s).zip(src) {
                        *d += v;
                    }
                }
            }
        }
    }

    /// Phase planes ("space to depth"): at stride 2 with an even kernel, the zero-padded image
    /// split by row and column parity, plane (c, py, px) holding padded pixel (2i + py, 2j + px)
    /// at (i, j). Every im2col row is then a run of contiguous copies from one plane, and each
    /// pixel is gathered once instead of k²/4 times with a stride-2 gather per window row
    /// (im2col and col2im were ~20 % of a 64×64 DCGAN step).
    /// (Pixels outside the planes are read by no window: they get no column and a zero
    /// gradient.)
    fn phased(&self) -> bool {
        self.s == 2 && self.k.is_multiple_of(2)
    }
    fn plane_h(&self) -> usize {
        self.oh + self.k / 2 - 1
    }
    fn plane_w(&self) -> usize {
        self.ow + self.k / 2 - 1
    }
    /// Floats of one sample's phase planes, `[c, 2, 2, plane_h, plane_w]`.
    fn phased_len(&self) -> usize {
        self.c * 4 * self.plane_h() * self.plane_w()
    }

    /// For phase plane row `i` of parity (py, px): the image row, and the plane columns
    /// `lo..hi` that hold image pixels, starting at image column `first`.
    fn phase_span(&self, i: usize, py: usize, px: usize) -> Option<(usize, usize, usize, usize)> {
        let y = (2 * i + py).checked_sub(self.p).filter(|&y| y < self.ih)?;
        let lo = self.p.saturating_sub(px).div_ceil(2);
        let hi = (self.iw + self.p - px).div_ceil(2).min(self.plane_w());
        (lo < hi).then(|| (y, lo, hi, 2 * lo + px - self.p))
    }

    with_avx2! {
        /// One sample's image → its phase planes ([`Self::phased`]).
        fn split_phases(&self, image: &[f32], planes: &mut [f32]) => split_phases_any
    }

    #[inline(always)]
    fn split_phases_any(&self, image: &[f32], planes: &mut [f32]) {
        let (ph, pw) = (self.plane_h(), self.plane_w());
        for (q, plane) in planes.chunks_exact_mut(ph * pw).enumerate() {
            let (c, py, px) = (q / 4, (q / 2) % 2, q % 2);
            let channel = &image[c * self.ih * self.iw..(c + 1) * self.ih * self.iw];
            for (i, row) in plane.chunks_exact_mut(pw).enumerate() {
                let Some((y, lo, hi, first)) = self.phase_span(i, py, px) else {
                    row.fill(0.0);
                    continue;
                };
                row[..lo].fill(0.0);
                row[hi..].fill(0.0);
                let src = &channel[y * self.iw + first..(y + 1) * self.iw];
                let src = &src[..2 * (hi - lo) - 1];
                for (j, o) in row[lo..hi].iter_mut().enumerate() {
                    *o = src[2 * j];
                }
            }
        }
    }

    with_avx2! {
        /// One sample's phase planes → its image: every pixel inside the planes lies in exactly
        /// one (the image must start zeroed for those outside).
        fn merge_phases(&self, planes: &[f32], image: &mut [f32]) => merge_phases_any
    }

    #[inline(always)]
    fn merge_phases_any(&self, planes: &[f32], image: &mut [f32]) {
        let (ph, pw) = (self.plane_h(), self.plane_w());
        for (q, plane) in planes.chunks_exact(ph * pw).enumerate() {
            let (c, py, px) = (q / 4, (q / 2) % 2, q % 2);
            let channel = &mut image[c * self.ih * self.iw..(c + 1) * self.ih * self.iw];
            for (i, row) in plane.chunks_exact(pw).enumerate() {
                let Some((y, lo, hi, first)) = self.phase_span(i, py, px) else {
                    continue;
                };
                let dst = &mut channel[y * self.iw + first..(y + 1) * self.iw];
                let dst = &mut dst[..2 * (hi - lo) - 1];
                for (j, &v) in row[lo..hi].iter().enumerate() {
                    dst[2 * j] = v;
                }
            }
        }
    }

    with_avx2! {
        /// im2col row `r` from the phase planes of several samples (`[samples, phased_len]`).
        fn phased_row(&self, r: usize, planes: &[f32], dst: &mut [MaybeUninit<f32>]) => phased_row_any
    }

    #[inline(always)]
    fn phased_row_any(&self, r: usize, planes: &[f32], dst: &mut [MaybeUninit<f32>]) {
        let (c, ky, kx) = (r / (self.k * self.k), (r / self.k) % self.k, r % self.k);
        let (ph, pw) = (self.plane_h(), self.plane_w());
        let q = c * 4 + (ky % 2) * 2 + kx % 2;
        let samples = planes
            .chunks_exact(self.phased_len())
            .zip(dst.chunks_exact_mut(self.cols()));
        for (sample, dst) in samples {
            let plane = &sample[q * ph * pw..(q + 1) * ph * pw];
            for (oy, out) in dst.chunks_exact_mut(self.ow).enumerate() {
                let src = &plane[(oy + ky / 2) * pw + kx / 2..][..self.ow];
                // In runs of 8, which compile to inline vector moves; rows are 4–32 long, and
                // a memcpy call per row cost more than the copy.
                let (mut out8, mut src8) = (out.chunks_exact_mut(8), src.chunks_exact(8));
                for (o, s) in (&mut out8).zip(&mut src8) {
                    for (o, &v) in o.iter_mut().zip(s) {
                        o.write(v);
                    }
                }
                for (o, &v) in out8.into_remainder().iter_mut().zip(src8.remainder()) {
                    o.write(v);
                }
            }
        }
    }

    with_avx2! {
        /// [`Self::col2im`] onto phase planes (zeroed by the caller), as contiguous adds.
        fn phased_col2im(&self, cols: &[f32], stride: usize, planes: &mut [f32]) => phased_col2im_any
    }

    #[inline(always)]
    fn phased_col2im_any(&self, cols: &[f32], stride: usize, planes: &mut [f32]) {
        let (ph, pw) = (self.plane_h(), self.plane_w());
        for r in 0..self.rows() {
            let (c, ky, kx) = (r / (self.k * self.k), (r / self.k) % self.k, r % self.k);
            let q = c * 4 + (ky % 2) * 2 + kx % 2;
            let row = &cols[r * stride..];
            for (sample, src) in planes
                .chunks_exact_mut(self.phased_len())
                .zip(row.chunks(self.cols()))
            {
                let plane = &mut sample[q * ph * pw..(q + 1) * ph * pw];
                for (oy, src) in src.chunks_exact(self.ow).enumerate() {
                    let dst = &mut plane[(oy + ky / 2) * pw + kx / 2..][..self.ow];
                    for (d, &v) in dst.iter_mut().zip(src) {
                        *d += v;
                    }
                }
            }
        }
    }

    /// All im2col rows of `images` (several samples) into `dst` (`rows × samples·cols`), via
    /// phase planes in `scratch` where the geometry allows.
    fn im2col(&self, images: &[f32], dst: &mut [MaybeUninit<f32>], scratch: &mut Vec<f32>) {
        let width = dst.len() / self.rows();
        if !self.phased() {
            for (r, row) in dst.chunks_exact_mut(width).enumerate() {
                self.im2col_row(r, images, row);
            }
            return;
        }
        let samples = images.len() / self.image();
        scratch.resize(samples * self.phased_len(), 0.0);
        for (image, planes) in images
            .chunks_exact(self.image())
            .zip(scratch.chunks_exact_mut(self.phased_len()))
        {
            self.split_phases(image, planes);
        }
        for (r, row) in dst.chunks_exact_mut(width).enumerate() {
            self.phased_row(r, scratch, row);
        }
    }
}

/// A vector of `len` f32 that `fill` writes in full: large outputs skip the zeroing that
/// `vec![0.0; len]` does (4 % of a training step's CPU time in a profile).
///
/// # Safety
/// `fill` must initialise every element of the slice it gets.
pub(crate) unsafe fn filled(len: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    fill(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: the caller's `fill` initialised all `len` elements.
    unsafe { v.set_len(len) };
    v
}

/// A row-major-or-strided matrix operand for `gemm`.
#[derive(Clone, Copy)]
struct Mat {
    ptr: *const f32,
    rs: isize,
    cs: isize,
}

/// A GEMM output: element (i, j) at `ptr + i·rs + j·cs`.
struct MatMut {
    ptr: *mut f32,
    rs: isize,
    cs: isize,
}

impl MatMut {
    fn row_major(ptr: *mut f32, rs: usize) -> Self {
        Self {
            ptr,
            rs: rs as isize,
            cs: 1,
        }
    }
}

/// `dst[m×n] = a[m×k] · b[k×n]` on one thread (callers parallelise around it).
///
/// # Safety
/// `dst` must be valid for writes, and `a`, `b` for reads, at every index their strides reach.
unsafe fn matmul(m: usize, n: usize, k: usize, dst: MatMut, a: Mat, b: Mat) {
    unsafe { matmul_add(m, n, k, dst, a, b, false) }
}

/// [`matmul`], adding the product to `dst` when `accumulate` (then `dst` must be initialised).
///
/// # Safety
/// As for [`matmul`].
unsafe fn matmul_add(m: usize, n: usize, k: usize, dst: MatMut, a: Mat, b: Mat, accumulate: bool) {
    gemm::gemm(
        m,
        n,
        k,
        dst.ptr,
        dst.cs,
        dst.rs,
        accumulate,
        a.ptr,
        a.cs,
        a.rs,
        b.ptr,
        b.cs,
        b.rs,
        if accumulate { 1.0 } else { 0.0 },
        1.0,
        false,
        false,
        false,
        Parallelism::None,
    )
}

/// Where a GEMM's im2col columns come from.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// Built for the whole batch by [`Plan::patches`] (`[rows, N·cols]`).
    Batch(&'a [f32]),
    /// Built per group of samples from these images, inside the thread that uses them.
    Images(&'a [f32]),
}

/// Positions per sample from which a layer's columns are built per sample group, in cache,
/// instead of for the whole batch: the 64×64 DCGAN's 32×32 and 64×64 layers, whose batch
/// columns (13–67 MB) otherwise go out to memory and back.
const STREAM_MIN_COLS: usize = 256;
/// Fixed sample chunks of a streamed weight gradient, summed in order (shape-only, so the
/// result does not depend on the thread count).
const WEIGHT_CHUNKS: usize = 8;

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
        let k = n * g.cols();
        let image = &image[..n * g.image()];
        let planes = if g.phased() {
            let mut planes = vec![0f32; n * g.phased_len()];
            planes
                .par_chunks_mut(g.phased_len())
                .zip(image.par_chunks(g.image()))
                .for_each(|(planes, image)| g.split_phases(image, planes));
            planes
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
    /// thin GEMM per sample, far below GEMM speed. Depends on the shapes only, never on the
    /// thread count, so results stay bit-identical across machines.
    fn group(&self) -> usize {
        const MIN_COLUMNS: usize = 192;
        MIN_COLUMNS
            .div_ceil(self.g.cols())
            .clamp(1, (self.n / 4).max(1))
    }

    /// Whether this layer's columns are built per sample group ([`STREAM_MIN_COLS`]).
    fn streams(&self) -> bool {
        self.g.cols() >= STREAM_MIN_COLS
    }

    /// matrix[n] = W · im2col(image[n]), a group of samples per GEMM.
    fn patches_to_matrix(&self, source: Source, w: &[f32]) -> Vec<f32> {
        let len = self.n * self.m * self.g.cols();
        // SAFETY: each group's GEMM (or the copy after it) writes all of its m × cols blocks.
        unsafe { filled(len, |out| self.patches_to_matrix_into(source, w, out)) }
    }

    fn patches_to_matrix_into(&self, source: Source, w: &[f32], out: &mut [MaybeUninit<f32>]) {
        let (g, m, group) = (self.g, self.m, self.group());
        let (rows, cols, k) = (g.rows(), g.cols(), self.n * g.cols());
        out.par_chunks_mut(group * m * cols)
            .enumerate()
            .for_each_init(
                || (Vec::new(), Vec::new(), Vec::new()),
                |(tmp, columns, scratch), (gi, dst)| {
                    let width = dst.len() / m;
                    let a = Mat {
                        ptr: w.as_ptr(),
                        rs: rows as isize,
                        cs: 1,
                    };
                    let b = match source {
                        Source::Batch(patches) => Mat {
                            ptr: patches[gi * group * cols..].as_ptr(),
                            rs: k as isize,
                            cs: 1,
                        },
                        Source::Images(images) => {
                            let first = gi * group * g.image();
                            let images = &images[first..first + width / cols * g.image()];
                            columns.resize(rows * width, MaybeUninit::uninit());
                            g.im2col(images, columns, scratch);
                            // im2col writes every element of `columns`.
                            Mat {
                                ptr: columns.as_ptr().cast(),
                                rs: width as isize,
                                cs: 1,
                            }
                        }
                    };
                    if width == cols {
                        // SAFETY: dst is m×cols (written, never read: beta 0); w is m×rows; b reads
                        // rows×cols at its row stride.
                        unsafe {
                            matmul(
                                m,
                                cols,
                                rows,
                                MatMut::row_major(dst.as_mut_ptr().cast(), cols),
                                a,
                                b,
                            )
                        }
                        return;
                    }
                    tmp.resize(m * width, 0.0);
                    // SAFETY: tmp is m×width; b reads rows×width at its row stride.
                    unsafe {
                        matmul(
                            m,
                            width,
                            rows,
                            MatMut::row_major(tmp.as_mut_ptr(), width),
                            a,
                            b,
                        )
                    }
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
    fn matrix_to_patches(&self, matrix: &[f32], w: &[f32]) -> Vec<f32> {
        let (g, m) = (self.g, self.m);
        let (rows, cols) = (g.rows(), g.cols());
        let group = self.group();
        // Wᵀ laid out once per call: gemm reads it in place, where W itself (k-stride `rows`)
        // would be packed again by every group's GEMM.
        let mut wt = vec![0f32; rows * m];
        transpose(w, m, rows, &mut wt);
        let mut out = vec![0f32; self.n * g.image()];
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
                    let a = Mat {
                        ptr: wt.as_ptr(),
                        rs: m as isize,
                        cs: 1,
                    };
                    let b = Mat {
                        ptr: b.as_ptr(),
                        rs: width as isize,
                        cs: 1,
                    };
                    // SAFETY: buf is rows×width; wt is rows×m; b is m×width.
                    unsafe {
                        matmul(
                            rows,
                            width,
                            m,
                            MatMut::row_major(buf.as_mut_ptr(), width),
                            a,
                            b,
                        )
                    }
                    if g.phased() {
                        planes.clear();
                        planes.resize(samples * g.phased_len(), 0.0);
                        g.phased_col2im(buf, width, planes);
                        for (image, planes) in img
                            .chunks_exact_mut(g.image())
                            .zip(planes.chunks_exact(g.phased_len()))
                        {
                            g.merge_phases(planes, image);
                        }
                    } else {
                        g.col2im(buf, width, img);
                    }
                },
            );
        out
    }

    /// dW = Σₙ matrix[n] · im2col(image[n])ᵀ, as one GEMM with the batch folded into K
    /// (`patches` from [`Plan::patches`]), split into column blocks across threads. gemm reads
    /// both operands along their contiguous dimension: the matrix side transposed per sample to
    /// `[N·cols, m]`, and dW written column-major, then transposed. In their natural layouts
    /// gemm packed the patches (rows × K, rows K floats apart), 7–15 % of a 64×64 DCGAN step.
    fn weight_grad(&self, matrix: &[f32], patches: &[f32]) -> Vec<f32> {
        let (g, m, n) = (self.g, self.m, self.n);
        let (rows, cols) = (g.rows(), g.cols());
        let k = n * cols;
        let mut mt = vec![0f32; k * m];
        mt.par_chunks_mut(cols * m)
            .zip(matrix.par_chunks(m * cols))
            .for_each(|(dst, src)| transpose_block(src, m, cols, 0, dst));
        let blocks = (rayon::current_num_threads() * 2).clamp(1, rows);
        let width = rows.div_ceil(blocks);
        let mut dwt = vec![0f32; rows * m];
        dwt.par_chunks_mut(width * m)
            .enumerate()
            .for_each(|(b, dst)| {
                let a = Mat {
                    ptr: mt.as_ptr(),
                    rs: 1,
                    cs: m as isize,
                };
                // Columns b·width.. of im2col(image)ᵀ: element (j, r) at r·k + j.
                let bt = Mat {
                    ptr: patches[b * width * k..].as_ptr(),
                    rs: 1,
                    cs: k as isize,
                };
                let out = MatMut {
                    ptr: dst.as_mut_ptr(),
                    rs: 1,
                    cs: m as isize,
                };
                // SAFETY: dst holds columns b·width.. of the column-major m × rows dW; mt is
                // m × k column-major; the patches are rows × k.
                unsafe { matmul(m, dst.len() / m, k, out, a, bt) }
            });
        let mut dw = vec![0f32; m * rows];
        transpose(&dwt, rows, m, &mut dw);
        dw
    }

    /// [`Plan::weight_grad`] with the columns built per sample inside each thread (layers that
    /// [`Plan::streams`]), summed per [`WEIGHT_CHUNKS`] chunk and the chunks added in order.
    fn weight_grad_streamed(&self, matrix: &[f32], images: &[f32]) -> Vec<f32> {
        let (g, m) = (self.g, self.m);
        let (rows, cols) = (g.rows(), g.cols());
        let per = self.n.div_ceil(WEIGHT_CHUNKS);
        let column_major = m < rows;
        let partials: Vec<Vec<f32>> = images[..self.n * g.image()]
            .par_chunks(per * g.image())
            .zip(matrix.par_chunks(per * m * cols))
            .map(|(images, matrices)| {
                let mut sum = vec![0f32; m * rows];
                let mut columns = vec![MaybeUninit::uninit(); rows * cols];
                let mut scratch = Vec::new();
                let samples = images
                    .chunks_exact(g.image())
                    .zip(matrices.chunks_exact(m * cols));
                for (s, (image, dy)) in samples.enumerate() {
                    g.im2col(image, &mut columns, &mut scratch);
                    let a = Mat {
                        ptr: dy.as_ptr(),
                        rs: cols as isize,
                        cs: 1,
                    };
                    // im2col(image)ᵀ: element (j, r) at r·cols + j; written in full above.
                    let bt = Mat {
                        ptr: columns.as_ptr().cast(),
                        rs: 1,
                        cs: cols as isize,
                    };
                    // gemm packs dy (m × cols) for a column-major dW, the columns (rows × cols)
                    // for a row-major one: the smaller of the two.
                    let out = if column_major {
                        MatMut {
                            ptr: sum.as_mut_ptr(),
                            rs: 1,
                            cs: m as isize,
                        }
                    } else {
                        MatMut::row_major(sum.as_mut_ptr(), rows)
                    };
                    // SAFETY: sum is m×rows (initialised: zeros, then earlier products); dy is
                    // m×cols; the columns are rows×cols.
                    unsafe { matmul_add(m, rows, cols, out, a, bt, s > 0) }
                }
                sum
            })
            .collect();
        let mut parts = partials.into_iter();
        let mut sum = parts.next().unwrap_or_else(|| vec![0f32; m * rows]);
        for part in parts {
            for (d, p) in sum.iter_mut().zip(&part) {
                *d += p;
            }
        }
        if !column_major {
            return sum;
        }
        let mut dw = vec![0f32; m * rows];
        transpose(&sum, rows, m, &mut dw);
        dw
    }
}

/// `dst` (`[cols, rows]`) = `src` (`[rows, cols]`) transposed, split across threads by
/// blocks of `dst` rows.
fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const ROWS: usize = 32;
    dst.par_chunks_mut(ROWS * rows)
        .enumerate()
        .for_each(|(t, block)| transpose_block(src, rows, cols, t * ROWS, block));
}

/// Rows `c0..` of `src`'s transpose (as many as `block` holds) on one thread.
fn transpose_block(src: &[f32], rows: usize, cols: usize, c0: usize, block: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { transpose_block_avx2(src, rows, cols, c0, block) };
    }
    transpose_block_any(src, rows, cols, c0, block)
}

/// [`transpose_block`] with each 8×8 tile transposed in AVX registers (LLVM leaves the
/// portable tile loop scalar even with AVX2 enabled, and transposes were 3 % of a step).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transpose_block_avx2(
    src: &[f32],
    rows: usize,
    cols: usize,
    c0: usize,
    block: &mut [f32],
) {
    transpose_tiles(src, rows, cols, c0, block, |s, ss, d, ds| {
        // SAFETY: the CPU has AVX2; transpose_tiles hands over 8 rows of 8 in both slices.
        unsafe { tile8_avx(s, ss, d, ds) }
    })
}

fn transpose_block_any(src: &[f32], rows: usize, cols: usize, c0: usize, block: &mut [f32]) {
    transpose_tiles(src, rows, cols, c0, block, |s, ss, d, ds| {
        let mut tile = [[0f32; 8]; 8];
        for (i, line) in tile.iter_mut().enumerate() {
            line.copy_from_slice(&s[i * ss..i * ss + 8]);
        }
        for j in 0..8 {
            for (i, line) in tile.iter().enumerate() {
                d[j * ds + i] = line[j];
            }
        }
    })
}

/// The tile loop of a transpose: `tile(src, src_stride, dst, dst_stride)` transposes one 8×8
/// tile; the ragged edges are copied one element at a time.
#[inline(always)]
fn transpose_tiles(
    src: &[f32],
    rows: usize,
    cols: usize,
    c0: usize,
    block: &mut [f32],
    tile: impl Fn(&[f32], usize, &mut [f32], usize),
) {
    const T: usize = 8;
    let nc = block.len() / rows;
    let (full_r, full_c) = (rows / T * T, nc / T * T);
    for r0 in (0..full_r).step_by(T) {
        for c in (0..full_c).step_by(T) {
            let from = &src[r0 * cols + c0 + c..][..(T - 1) * cols + T];
            let to = &mut block[c * rows + r0..][..(T - 1) * rows + T];
            tile(from, cols, to, rows);
        }
    }
    for r in full_r..rows {
        for c in 0..nc {
            block[c * rows + r] = src[r * cols + c0 + c];
        }
    }
    for r in 0..full_r {
        for c in full_c..nc {
            block[c * rows + r] = src[r * cols + c0 + c];
        }
    }
}

/// One 8×8 tile: `d[j·ds + i] = s[i·ss + j]` (unpack, shuffle, then swap 128-bit lanes).
///
/// # Safety
/// The CPU must have AVX; `s` must hold `7·ss + 8` floats and `d` `7·ds + 8`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tile8_avx(s: &[f32], ss: usize, d: &mut [f32], ds: usize) {
    use std::arch::x86_64::*;
    assert!(s.len() >= 7 * ss + 8 && d.len() >= 7 * ds + 8);
    let (s, d) = (s.as_ptr(), d.as_mut_ptr());
    // SAFETY: every access stays within the lengths asserted above.
    unsafe {
        let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(s.add(i * ss)));
        let lo = |a, b| _mm256_unpacklo_ps(a, b);
        let hi = |a, b| _mm256_unpackhi_ps(a, b);
        let t = [
            lo(r[0], r[1]),
            hi(r[0], r[1]),
            lo(r[2], r[3]),
            hi(r[2], r[3]),
            lo(r[4], r[5]),
            hi(r[4], r[5]),
            lo(r[6], r[7]),
            hi(r[6], r[7]),
        ];
        // Columns j and j + 4 of rows 0–3 (u[j]) and of rows 4–7 (u[j + 4]).
        let u = [
            _mm256_shuffle_ps::<0x44>(t[0], t[2]),
            _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
            _mm256_shuffle_ps::<0x44>(t[1], t[3]),
            _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
            _mm256_shuffle_ps::<0x44>(t[4], t[6]),
            _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
            _mm256_shuffle_ps::<0x44>(t[5], t[7]),
            _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
        ];
        for j in 0..4 {
            _mm256_storeu_ps(
                d.add(j * ds),
                _mm256_permute2f128_ps::<0x20>(u[j], u[j + 4]),
            );
            _mm256_storeu_ps(
                d.add((j + 4) * ds),
                _mm256_permute2f128_ps::<0x31>(u[j], u[j + 4]),
            );
        }
    }
}

/// `[samples, m, cols]` → `[m, samples·cols]` in `dst`: each channel's rows of all samples side
/// by side, the layout of a GEMM over several samples. Parallel over channels.
fn channel_major(matrix: &[f32], m: usize, cols: usize, dst: &mut [f32]) {
    dst.par_chunks_mut(dst.len() / m)
        .enumerate()
        .for_each(|(i, row)| {
            let samples = matrix.chunks_exact(m * cols);
            for (d, sample) in row.chunks_exact_mut(cols).zip(samples) {
                d.copy_from_slice(&sample[i * cols..(i + 1) * cols]);
            }
        });
}

/// Where a contiguous tensor's elements lie in its storage.
fn contiguous_range(l: &Layout) -> Result<std::ops::Range<usize>> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(a..b),
        None => bail!("fast CPU ops need contiguous tensors"),
    }
}

/// The f32 data of a contiguous CPU tensor (the fast ops make their inputs contiguous first).
pub fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    match s {
        CpuStorage::F32(v) => Ok(&v[contiguous_range(l)?]),
        _ => bail!("fast CPU ops support f32 only"),
    }
}

/// [`slice`], writable: the storage of an in-place op.
pub fn slice_mut<'a>(s: &'a mut CpuStorage, l: &Layout) -> Result<&'a mut [f32]> {
    match s {
        CpuStorage::F32(v) => Ok(&mut v[contiguous_range(l)?]),
        _ => bail!("fast CPU ops support f32 only"),
    }
}

/// im2col columns computed by one pass and reused by a later one: a Conv2d's forward pass makes
/// those of its input, which its weight gradient needs; a ConvTranspose2d's input gradient makes
/// those of the output gradient, which its weight gradient needs too. (They are the same
/// numbers; recomputing them cost ~15 % of a step.)
type Columns = Arc<Mutex<Option<Arc<Vec<f32>>>>>;

/// The convolution itself: `(input, weight) → output`.
struct Forward {
    spec: ConvSpec,
    patches: Columns,
}
/// `(grad_output, weight) → grad_input`, for the input of shape `.1`; a transposed one leaves
/// its columns in `.2`.
struct GradInput(ConvSpec, [usize; 4], Columns);
/// `(input, grad_output) → grad_weight`, for the weight of shape `.1`, reusing the columns in
/// `.2` when an earlier pass left them.
struct GradWeight(ConvSpec, [usize; 4], Columns);

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
            ConvKind::Conv if plan.streams() => (
                CpuStorage::F32(plan.patches_to_matrix(Source::Images(x), w)),
                plan.matrix_shape(),
            ),
            ConvKind::Conv => {
                let patches = plan.patches(x);
                let y = plan.patches_to_matrix(Source::Batch(&patches), w);
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
        let columns = match self.spec.kind {
            ConvKind::Conv => Arc::clone(&self.patches),
            ConvKind::Transposed => Columns::default(),
        };
        let dx = if x.track_op() {
            let op = GradInput(self.spec, dims(x)?, Arc::clone(&columns));
            Some(dy.apply_op2_no_bwd(w, &op)?)
        } else {
            None
        };
        let dw = if w.track_op() {
            let op = GradWeight(self.spec, dims(w)?, columns);
            Some(x.apply_op2_no_bwd(&dy, &op)?)
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
            ConvKind::Transposed if plan.streams() => (
                CpuStorage::F32(plan.patches_to_matrix(Source::Images(dy), w)),
                plan.matrix_shape(),
            ),
            ConvKind::Transposed => {
                let patches = plan.patches(dy);
                let dx = plan.patches_to_matrix(Source::Batch(&patches), w);
                *self.2.lock().expect("not poisoned") = Some(Arc::new(patches));
                (CpuStorage::F32(dx), plan.matrix_shape())
            }
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
        let cached = self.2.lock().expect("not poisoned").take();
        let dw = match (self.0.kind, cached) {
            (ConvKind::Conv, _) if plan.streams() => plan.weight_grad_streamed(dy, x),
            (ConvKind::Transposed, _) if plan.streams() => plan.weight_grad_streamed(x, dy),
            (ConvKind::Conv, Some(patches)) => plan.weight_grad(dy, &patches),
            (ConvKind::Conv, None) => plan.weight_grad(dy, &plan.patches(x)),
            (ConvKind::Transposed, Some(patches)) => plan.weight_grad(x, &patches),
            (ConvKind::Transposed, None) => plan.weight_grad(x, &plan.patches(dy)),
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
        patches: Columns::default(),
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
