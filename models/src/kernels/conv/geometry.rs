//! An image seen through k×k windows: im2col, col2im and their stride-2 phase planes.

use std::mem::MaybeUninit;
use std::ops::Range;

use crate::kernels::storage::rewritable;

/// An image `[c, ih, iw]` seen through k×k windows at stride `s` and padding `p`: `oh × ow` windows.
#[derive(Debug, Clone, Copy)]
pub(super) struct Geometry {
    pub(super) c: usize,
    pub(super) ih: usize,
    pub(super) iw: usize,
    pub(super) k: usize,
    pub(super) s: usize,
    pub(super) p: usize,
    pub(super) oh: usize,
    pub(super) ow: usize,
}

impl Geometry {
    pub(super) fn rows(&self) -> usize {
        self.c * self.k * self.k
    }
    pub(super) fn cols(&self) -> usize {
        self.oh * self.ow
    }
    pub(super) fn image(&self) -> usize {
        self.c * self.ih * self.iw
    }

    /// The output columns `lo..hi` whose input column `ox·s + kx − p` lies inside the image.
    pub(super) fn valid_columns(&self, kx: usize) -> (usize, usize) {
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
    pub(super) fn im2col_row(&self, r: usize, images: &[f32], dst: &mut [MaybeUninit<f32>]) {
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
    pub(super) fn col2im(&self, cols: &[f32], stride: usize, images: &mut [f32]) {
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
    /// (im2col and col2im were a large share of a 64×64 DCGAN step: docs/performance.md).
    /// (Pixels outside the planes are read by no window: they get no column and a zero
    /// gradient.)
    pub(super) fn phased(&self) -> bool {
        self.s == 2 && self.k.is_multiple_of(2)
    }
    pub(super) fn plane_h(&self) -> usize {
        self.oh + self.k / 2 - 1
    }
    pub(super) fn plane_w(&self) -> usize {
        self.ow + self.k / 2 - 1
    }
    /// Floats of one sample's phase planes, `[c, 2, 2, plane_h, plane_w]`.
    pub(super) fn phased_len(&self) -> usize {
        self.c * 4 * self.plane_h() * self.plane_w()
    }

    /// Where plane row `i` of row parity `py` gets its pixels from, if from the image.
    pub(super) fn row_phases(&self, i: usize, py: usize) -> Option<RowPhases> {
        let y = (2 * i + py).checked_sub(self.p).filter(|&y| y < self.ih)?;
        let span = |px: usize| {
            let lo = self.p.saturating_sub(px).div_ceil(2);
            let hi = (self.iw + self.p - px).div_ceil(2).min(self.plane_w());
            lo..hi.max(lo)
        };
        let even_px = self.p % 2;
        Some(RowPhases {
            y,
            even_px,
            even: span(even_px),
            odd: span(1 - even_px),
        })
    }

    with_avx2! {
        /// One sample's image → its phase planes ([`Self::phased`]), every element written.
        fn split_phases(&self, image: &[f32], planes: &mut [MaybeUninit<f32>]) => split_phases_any
    }

    #[inline(always)]
    pub(super) fn split_phases_any(&self, image: &[f32], planes: &mut [MaybeUninit<f32>]) {
        let zero = MaybeUninit::new(0.0);
        let (ph, pw) = (self.plane_h(), self.plane_w());
        for (c, quad) in planes.chunks_exact_mut(4 * ph * pw).enumerate() {
            let channel = &image[c * self.ih * self.iw..(c + 1) * self.ih * self.iw];
            for (py, half) in quad.chunks_exact_mut(2 * ph * pw).enumerate() {
                let (p0, p1) = half.split_at_mut(ph * pw);
                for (i, (r0, r1)) in p0
                    .chunks_exact_mut(pw)
                    .zip(p1.chunks_exact_mut(pw))
                    .enumerate()
                {
                    let Some(row) = self.row_phases(i, py) else {
                        r0.fill(zero);
                        r1.fill(zero);
                        continue;
                    };
                    let (re, ro) = row.order(r0, r1);
                    re[..row.even.start].fill(zero);
                    re[row.even.end..].fill(zero);
                    ro[..row.odd.start].fill(zero);
                    ro[row.odd.end..].fill(zero);
                    let src = &channel[row.y * self.iw..(row.y + 1) * self.iw];
                    deinterleave(src, &mut re[row.even], &mut ro[row.odd]);
                }
            }
        }
    }

    with_avx2! {
        /// One sample's phase planes → its image: every pixel inside the planes lies in exactly
        /// one, and is written; those outside ([`Self::planes_hold_every_pixel`]) are not.
        fn merge_phases(&self, planes: &[f32], image: &mut [MaybeUninit<f32>]) => merge_phases_any
    }

    /// Whether every pixel of the image lies in a phase plane (all the k4 s2 p1 layers).
    pub(super) fn planes_hold_every_pixel(&self) -> bool {
        (self.ih - 1 + self.p) / 2 < self.plane_h() && (self.iw - 1 + self.p) / 2 < self.plane_w()
    }

    #[inline(always)]
    pub(super) fn merge_phases_any(&self, planes: &[f32], image: &mut [MaybeUninit<f32>]) {
        let (ph, pw) = (self.plane_h(), self.plane_w());
        for (c, quad) in planes.chunks_exact(4 * ph * pw).enumerate() {
            let channel = &mut image[c * self.ih * self.iw..(c + 1) * self.ih * self.iw];
            for (py, half) in quad.chunks_exact(2 * ph * pw).enumerate() {
                let (p0, p1) = half.split_at(ph * pw);
                for (i, (r0, r1)) in p0.chunks_exact(pw).zip(p1.chunks_exact(pw)).enumerate() {
                    let Some(row) = self.row_phases(i, py) else {
                        continue;
                    };
                    let (re, ro) = row.order(r0, r1);
                    let dst = &mut channel[row.y * self.iw..(row.y + 1) * self.iw];
                    interleave(&re[row.even], &ro[row.odd], dst);
                }
            }
        }
    }

    with_avx2! {
        /// im2col row `r` from the phase planes of several samples (`[samples, phased_len]`).
        fn phased_row(&self, r: usize, planes: &[f32], dst: &mut [MaybeUninit<f32>]) => phased_row_any
    }

    #[inline(always)]
    pub(super) fn phased_row_any(&self, r: usize, planes: &[f32], dst: &mut [MaybeUninit<f32>]) {
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
                copy_row(out, src);
            }
        }
    }

    with_avx2! {
        /// [`Self::col2im`] onto phase planes (zeroed by the caller), as contiguous adds.
        fn phased_col2im(&self, cols: &[f32], stride: usize, planes: &mut [f32]) => phased_col2im_any
    }

    #[inline(always)]
    pub(super) fn phased_col2im_any(&self, cols: &[f32], stride: usize, planes: &mut [f32]) {
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
    pub(super) fn im2col(
        &self,
        images: &[f32],
        dst: &mut [MaybeUninit<f32>],
        scratch: &mut Vec<f32>,
    ) {
        let width = dst.len() / self.rows();
        if !self.phased() {
            for (r, row) in dst.chunks_exact_mut(width).enumerate() {
                self.im2col_row(r, images, row);
            }
            return;
        }
        let samples = images.len() / self.image();
        scratch.resize(samples * self.phased_len(), 0.0);
        // SAFETY: split_phases writes f32 values only.
        let planes = unsafe { rewritable(scratch) };
        for (image, planes) in images
            .chunks_exact(self.image())
            .zip(planes.chunks_exact_mut(self.phased_len()))
        {
            self.split_phases(image, planes);
        }
        for (r, row) in dst.chunks_exact_mut(width).enumerate() {
            self.phased_row(r, scratch, row);
        }
    }
}

/// `dst` = `src`: a row of 4 or more floats as runs of 4 (the last one overlapping the one
/// before where the length is not a multiple of 4), a shorter one element by element. The
/// layers' rows are 4–32 long: a memcpy call per row cost more than the copy, and LLVM turns a
/// plain copy loop into one (5 % of an MNIST step, in `perf`); it leaves these vector moves
/// alone.
#[inline(always)]
fn copy_row(dst: &mut [MaybeUninit<f32>], src: &[f32]) {
    let n = dst.len();
    if n < 4 {
        for (d, &v) in dst.iter_mut().zip(src) {
            d.write(v);
        }
        return;
    }
    for x in (0..n - 4).step_by(4) {
        copy4(&mut dst[x..], &src[x..]);
    }
    copy4(&mut dst[n - 4..], &src[n - 4..]);
}

/// The first 4 floats of `src` into `dst`.
#[inline(always)]
fn copy4(dst: &mut [MaybeUninit<f32>], src: &[f32]) {
    let (dst, src) = (&mut dst[..4], &src[..4]);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of x86-64, and both slices hold 4 floats.
    unsafe {
        use std::arch::x86_64::{_mm_loadu_ps, _mm_storeu_ps};
        _mm_storeu_ps(dst.as_mut_ptr().cast(), _mm_loadu_ps(src.as_ptr()));
    }
    #[cfg(not(target_arch = "x86_64"))]
    for (d, &v) in dst.iter_mut().zip(src) {
        d.write(v);
    }
}

/// One image row `y` in the two phase planes of its row parity: its even columns (0, 2, …) fill
/// the plane columns `even` of the plane with column parity `even_px`, its odd ones the plane
/// columns `odd` of the other (a range is empty where a plane holds none).
pub(super) struct RowPhases {
    y: usize,
    even_px: usize,
    even: Range<usize>,
    odd: Range<usize>,
}

impl RowPhases {
    /// The rows of column parity 0 and 1 as (even columns' row, odd columns' row).
    fn order<T>(&self, r0: T, r1: T) -> (T, T) {
        if self.even_px == 0 {
            (r0, r1)
        } else {
            (r1, r0)
        }
    }
}

/// `even[u] = pairs[2u]`, `odd[u] = pairs[2u + 1]`: both planes from one pass over an image
/// row, which LLVM vectorises as loads and shuffles (one plane at a time, each row was read
/// twice). A function of its own so that LLVM knows the slices apart: inlined into the loop
/// over reborrowed rows, it checked at run time whether they overlap.
#[inline(always)]
fn deinterleave(pairs: &[f32], even: &mut [MaybeUninit<f32>], odd: &mut [MaybeUninit<f32>]) {
    let n = even.len().min(odd.len());
    for ((e, o), pair) in even
        .iter_mut()
        .zip(odd.iter_mut())
        .zip(pairs.chunks_exact(2))
    {
        e.write(pair[0]);
        o.write(pair[1]);
    }
    for (u, e) in even.iter_mut().enumerate().skip(n) {
        e.write(pairs[2 * u]);
    }
    for (u, o) in odd.iter_mut().enumerate().skip(n) {
        o.write(pairs[2 * u + 1]);
    }
}

/// The adjoint of [`deinterleave`].
#[inline(always)]
fn interleave(even: &[f32], odd: &[f32], pairs: &mut [MaybeUninit<f32>]) {
    let n = even.len().min(odd.len());
    for ((&e, &o), pair) in even.iter().zip(odd).zip(pairs.chunks_exact_mut(2)) {
        pair[0].write(e);
        pair[1].write(o);
    }
    for (u, &e) in even.iter().enumerate().skip(n) {
        pairs[2 * u].write(e);
    }
    for (u, &o) in odd.iter().enumerate().skip(n) {
        pairs[2 * u + 1].write(o);
    }
}

#[cfg(test)]
mod tests {
    use super::Geometry;
    use crate::kernels::storage::rewritable;

    /// Every stride-2 geometry with an even kernel up to 6, padding below the kernel, and odd
    /// and even image sides from the smallest that fits.
    fn geometries() -> impl Iterator<Item = Geometry> {
        (2..=6usize).step_by(2).flat_map(|k| {
            (0..k).flat_map(move |p| {
                (k.saturating_sub(2 * p).max(1)..k + 7).flat_map(move |ih| {
                    (k.saturating_sub(2 * p).max(1)..k + 7).map(move |iw| {
                        let (oh, ow) = ((ih + 2 * p - k) / 2 + 1, (iw + 2 * p - k) / 2 + 1);
                        Geometry {
                            c: 2,
                            ih,
                            iw,
                            k,
                            s: 2,
                            p,
                            oh,
                            ow,
                        }
                    })
                })
            })
        })
    }

    /// The padded pixel (y, x) of channel c: zero outside the image.
    fn padded(g: &Geometry, image: &[f32], c: usize, y: usize, x: usize) -> f32 {
        match (y.checked_sub(g.p), x.checked_sub(g.p)) {
            (Some(y), Some(x)) if y < g.ih && x < g.iw => image[(c * g.ih + y) * g.iw + x],
            _ => 0.0,
        }
    }

    #[test]
    fn phase_planes_hold_the_padded_image_split_by_parity() {
        for g in geometries() {
            let image: Vec<f32> = (0..g.image()).map(|i| i as f32 + 1.0).collect();
            // NaN where split_phases left an element unwritten.
            let mut planes = vec![f32::NAN; g.phased_len()];
            // SAFETY: split_phases writes f32 values only.
            g.split_phases(&image, unsafe { rewritable(&mut planes) });
            let (ph, pw) = (g.plane_h(), g.plane_w());
            for (q, plane) in planes.chunks_exact(ph * pw).enumerate() {
                let (c, py, px) = (q / 4, (q / 2) % 2, q % 2);
                for (i, row) in plane.chunks_exact(pw).enumerate() {
                    for (j, &v) in row.iter().enumerate() {
                        let want = padded(&g, &image, c, 2 * i + py, 2 * j + px);
                        assert_eq!(v, want, "{g:?} plane {q} at ({i}, {j})");
                    }
                }
            }
            // Merging writes back every pixel that some plane holds, and only those.
            let mut merged = vec![0.0; g.image()];
            // SAFETY: merge_phases writes f32 values only.
            g.merge_phases(&planes, unsafe { rewritable(&mut merged) });
            let mut all_held = true;
            for (i, (&m, &v)) in merged.iter().zip(&image).enumerate() {
                let (y, x) = ((i / g.iw) % g.ih, i % g.iw);
                let held = (y + g.p) / 2 < ph && (x + g.p) / 2 < pw;
                all_held &= held;
                assert_eq!(m, if held { v } else { 0.0 }, "{g:?} pixel {i}");
            }
            assert_eq!(g.planes_hold_every_pixel(), all_held, "{g:?}");
        }
    }
}
