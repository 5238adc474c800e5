//! An image seen through k×k windows: im2col, col2im and their stride-2 phase planes.

use std::mem::MaybeUninit;

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

    /// For phase plane row `i` of parity (py, px): the image row, and the plane columns
    /// `lo..hi` that hold image pixels, starting at image column `first`.
    pub(super) fn phase_span(
        &self,
        i: usize,
        py: usize,
        px: usize,
    ) -> Option<(usize, usize, usize, usize)> {
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
    pub(super) fn split_phases_any(&self, image: &[f32], planes: &mut [f32]) {
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
    pub(super) fn merge_phases_any(&self, planes: &[f32], image: &mut [f32]) {
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
