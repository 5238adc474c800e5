//! Multi-scale sliced Wasserstein distance between image sets (Karras et al. 2018, "Progressive
//! Growing of GANs", appendix D): 7×7 patches from each level of a Laplacian pyramid, each set's
//! patches normalised per channel, then the 1-D Wasserstein distance along random directions.
//! No pretrained network, so it works for any image folder.

use nalgebra::DMatrix;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::error::{Result, TrainError};

const PATCH: usize = 7;
/// Pyramid levels stop at this side (ProGAN: 16).
const MIN_SIDE: usize = 16;
const DIRECTIONS: usize = 128;
const REPEATS: usize = 4;

/// Images as `n × c × side × side` f32 in [-1, 1].
#[derive(Clone, Copy)]
pub struct ImageSet<'a> {
    pub data: &'a [f32],
    pub channels: usize,
    pub side: usize,
}

impl<'a> ImageSet<'a> {
    /// The first `n` images of `data`.
    pub fn first(data: &'a [f32], n: usize, channels: usize, side: usize) -> Self {
        Self {
            data: &data[..n * channels * side * side],
            channels,
            side,
        }
    }

    pub fn len(&self) -> usize {
        self.data.len() / (self.channels * self.side * self.side)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn image(&self, i: usize) -> &[f32] {
        let per = self.channels * self.side * self.side;
        &self.data[i * per..(i + 1) * per]
    }
}

/// 5-tap binomial filter [1 4 6 4 1] / 16 along x and y, reflecting at the borders.
fn blur(plane: &[f32], side: usize) -> Vec<f32> {
    const K: [f32; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];
    let reflect = |i: isize| -> usize {
        let n = side as isize;
        let r = if i < 0 {
            -i
        } else if i >= n {
            2 * n - 2 - i
        } else {
            i
        };
        r.clamp(0, n - 1) as usize
    };
    let mut tmp = vec![0f32; side * side];
    for y in 0..side {
        for x in 0..side {
            tmp[y * side + x] = (0..5)
                .map(|k| K[k] * plane[y * side + reflect(x as isize + k as isize - 2)])
                .sum();
        }
    }
    let mut out = vec![0f32; side * side];
    for y in 0..side {
        for x in 0..side {
            out[y * side + x] = (0..5)
                .map(|k| K[k] * tmp[reflect(y as isize + k as isize - 2) * side + x])
                .sum();
        }
    }
    out
}

fn down(plane: &[f32], side: usize) -> Vec<f32> {
    let b = blur(plane, side);
    let half = side / 2;
    (0..half * half)
        .map(|i| b[(i / half) * 2 * side + (i % half) * 2])
        .collect()
}

fn up(plane: &[f32], side: usize) -> Vec<f32> {
    let big = side * 2;
    let mut z = vec![0f32; big * big];
    for y in 0..side {
        for x in 0..side {
            z[2 * y * big + 2 * x] = 4.0 * plane[y * side + x];
        }
    }
    blur(&z, big)
}

/// Laplacian pyramid of one plane, finest level first; the last level is the Gaussian residual.
fn laplacian(plane: &[f32], side: usize) -> Vec<(Vec<f32>, usize)> {
    let mut levels = Vec::new();
    let (mut current, mut s) = (plane.to_vec(), side);
    while s / 2 >= MIN_SIDE && s.is_multiple_of(2) {
        let smaller = down(&current, s);
        let restored = up(&smaller, s / 2);
        levels.push((
            current.iter().zip(&restored).map(|(a, b)| a - b).collect(),
            s,
        ));
        current = smaller;
        s /= 2;
    }
    levels.push((current, s));
    levels
}

/// Per level: `patches_per_image` random 7×7 patches of every image, `n·p × (c·49)` row-major,
/// normalised per channel over the whole set.
fn descriptors(set: ImageSet, patches_per_image: usize, rng: &mut ChaCha8Rng) -> Vec<DMatrix<f32>> {
    let (c, side) = (set.channels, set.side);
    let dim = c * PATCH * PATCH;
    let mut levels: Vec<Vec<f32>> = Vec::new();
    for i in 0..set.len() {
        let image = set.image(i);
        let pyramids: Vec<Vec<(Vec<f32>, usize)>> = (0..c)
            .map(|ch| laplacian(&image[ch * side * side..(ch + 1) * side * side], side))
            .collect();
        levels.resize(pyramids[0].len(), Vec::new());
        for (l, out) in levels.iter_mut().enumerate() {
            let s = pyramids[0][l].1;
            for _ in 0..patches_per_image {
                let (y0, x0) = (rng.gen_range(0..=s - PATCH), rng.gen_range(0..=s - PATCH));
                for pyramid in &pyramids {
                    let plane = &pyramid[l].0;
                    for y in y0..y0 + PATCH {
                        out.extend_from_slice(&plane[y * s + x0..y * s + x0 + PATCH]);
                    }
                }
            }
        }
    }
    levels
        .into_iter()
        .map(|flat| {
            let mut m = DMatrix::from_row_slice(flat.len() / dim, dim, &flat);
            for ch in 0..c {
                let cols = ch * PATCH * PATCH..(ch + 1) * PATCH * PATCH;
                let mut block = m.columns_range_mut(cols);
                let mean = block.mean();
                let var =
                    block.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / block.len() as f32;
                let std = var.sqrt().max(1e-8);
                block.apply(|v| *v = (*v - mean) / std);
            }
            m
        })
        .collect()
}

/// Sliced Wasserstein distance between equal-sized descriptor sets (× 10³, as ProGAN reports).
fn sliced_wasserstein(a: &DMatrix<f32>, b: &DMatrix<f32>, rng: &mut ChaCha8Rng) -> f64 {
    let dim = a.ncols();
    let mut total = 0.0;
    for _ in 0..REPEATS {
        let mut dirs = DMatrix::<f32>::from_fn(dim, DIRECTIONS, |_, _| rng.sample(StandardNormal));
        for mut col in dirs.column_iter_mut() {
            let norm = col.norm().max(1e-12);
            col /= norm;
        }
        let (pa, pb) = (a * &dirs, b * &dirs);
        let mut sum = 0.0f64;
        for d in 0..DIRECTIONS {
            let mut x: Vec<f32> = pa.column(d).iter().copied().collect();
            let mut y: Vec<f32> = pb.column(d).iter().copied().collect();
            x.sort_by(f32::total_cmp);
            y.sort_by(f32::total_cmp);
            sum += x
                .iter()
                .zip(&y)
                .map(|(p, q)| (p - q).abs() as f64)
                .sum::<f64>();
        }
        total += sum / (DIRECTIONS * a.nrows()) as f64;
    }
    total / REPEATS as f64 * 1e3
}

/// SWD per pyramid level (finest first; × 10³) between two equal-sized sets of the same shape.
/// `seed` fixes the patch positions and directions, so a set against itself gives exactly 0.
pub fn swd(a: ImageSet, b: ImageSet, patches_per_image: usize, seed: u64) -> Result<Vec<f64>> {
    if a.channels != b.channels || a.side != b.side || a.len() != b.len() || a.is_empty() {
        return Err(TrainError::Metric(format!(
            "SWD needs two non-empty sets of the same size and shape (got {} and {} images)",
            a.len(),
            b.len()
        )));
    }
    if a.side < MIN_SIDE {
        return Err(TrainError::Metric(format!(
            "SWD needs images of at least {MIN_SIDE}×{MIN_SIDE}"
        )));
    }
    let rng = |stream| {
        use rand::SeedableRng;
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        r.set_stream(stream);
        r
    };
    let da = descriptors(a, patches_per_image, &mut rng(1));
    let db = descriptors(b, patches_per_image, &mut rng(1));
    Ok(da
        .iter()
        .zip(&db)
        .map(|(x, y)| sliced_wasserstein(x, y, &mut rng(2)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pyramid_reconstructs_the_image() {
        let side = 32;
        let plane: Vec<f32> = (0..side * side)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let levels = laplacian(&plane, side);
        assert_eq!(levels.iter().map(|l| l.1).collect::<Vec<_>>(), vec![32, 16]);
        let restored: Vec<f32> = up(&levels[1].0, 16)
            .iter()
            .zip(&levels[0].0)
            .map(|(u, l)| u + l)
            .collect();
        for (a, b) in restored.iter().zip(&plane) {
            assert!((a - b).abs() < 1e-5);
        }
    }
}
