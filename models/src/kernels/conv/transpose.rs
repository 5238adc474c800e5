//! Matrix transposes and channel-major regrouping between the GEMMs' layouts.

use rayon::prelude::*;

/// `dst` (`[cols, rows]`) = `src` (`[rows, cols]`) transposed, split across threads by
/// blocks of `dst` rows.
pub(super) fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const ROWS: usize = 32;
    dst.par_chunks_mut(ROWS * rows)
        .enumerate()
        .for_each(|(t, block)| transpose_block(src, rows, cols, t * ROWS, block));
}

/// Rows `c0..` of `src`'s transpose (as many as `block` holds) on one thread.
pub(super) fn transpose_block(src: &[f32], rows: usize, cols: usize, c0: usize, block: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { transpose_block_avx2(src, rows, cols, c0, block) };
    }
    transpose_block_any(src, rows, cols, c0, block)
}

/// [`transpose_block`] with each 8×8 tile transposed in AVX registers (LLVM leaves the
/// portable tile loop scalar even with AVX2 enabled; docs/performance.md).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn transpose_block_avx2(
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

pub(super) fn transpose_block_any(
    src: &[f32],
    rows: usize,
    cols: usize,
    c0: usize,
    block: &mut [f32],
) {
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
pub(super) fn transpose_tiles(
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
pub(super) unsafe fn tile8_avx(s: &[f32], ss: usize, d: &mut [f32], ds: usize) {
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
pub(super) fn channel_major(matrix: &[f32], m: usize, cols: usize, dst: &mut [f32]) {
    dst.par_chunks_mut(dst.len() / m)
        .enumerate()
        .for_each(|(i, row)| {
            let samples = matrix.chunks_exact(m * cols);
            for (d, sample) in row.chunks_exact_mut(cols).zip(samples) {
                d.copy_from_slice(&sample[i * cols..(i + 1) * cols]);
            }
        });
}
