//! Diversity of an image set from its pairwise pixel distances: the mean distance between two
//! images (a collapsed generator's is near 0) and the share of images with a near-duplicate
//! in the set (closer than almost any two real images are).

use nalgebra::DMatrix;

use crate::evaluation::swd::ImageSet;

/// The set's pairwise Euclidean distances (pixels in [-1, 1]), via the Gram matrix.
pub struct Distances {
    n: usize,
    d: Vec<f64>,
}

impl Distances {
    pub fn of(set: ImageSet) -> Self {
        Self::of_rows(set.data, set.channels * set.side * set.side)
    }

    /// Distances between the rows of `data` (`n × dim`, row-major), features for instance.
    pub fn of_rows(data: &[f32], dim: usize) -> Self {
        let n = data.len() / dim.max(1);
        let x = DMatrix::from_row_slice(n, dim, &data[..n * dim]).map(|v| v as f64);
        let gram = &x * x.transpose();
        let mut d = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                d[i * n + j] = (gram[(i, i)] + gram[(j, j)] - 2.0 * gram[(i, j)])
                    .max(0.0)
                    .sqrt();
            }
        }
        Self { n, d }
    }

    /// Mean distance over all pairs of distinct images.
    pub fn mean(&self) -> f64 {
        let n = self.n;
        let sum: f64 = (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .map(|(i, j)| self.d[i * n + j])
            .sum();
        sum / (n * (n - 1) / 2).max(1) as f64
    }

    /// Each image's distance to its nearest other image.
    pub fn nearest(&self) -> Vec<f64> {
        let n = self.n;
        (0..n)
            .map(|i| {
                (0..n)
                    .filter(|&j| j != i)
                    .map(|j| self.d[i * n + j])
                    .fold(f64::INFINITY, f64::min)
            })
            .collect()
    }
}

/// The `q`-quantile of `values`.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Share of images whose nearest neighbour is closer than `threshold`.
pub fn near_duplicate_rate(nearest: &[f64], threshold: f64) -> f64 {
    nearest.iter().filter(|&&d| d < threshold).count() as f64 / nearest.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_of_a_tiny_set() {
        // Three 1×16×16 images: all -1, all 1, all 1 (a duplicate).
        let per = 256;
        let mut data = vec![-1f32; per];
        data.extend(vec![1f32; 2 * per]);
        let set = ImageSet {
            data: &data,
            channels: 1,
            side: 16,
        };
        let d = Distances::of(set);
        // |(-1) − 1| · √256 = 32 for the two mixed pairs, 0 for the duplicate pair.
        assert!((d.mean() - 64.0 / 3.0).abs() < 1e-9);
        assert_eq!(d.nearest(), vec![32.0, 0.0, 0.0]);
        assert!((near_duplicate_rate(&d.nearest(), 1.0) - 2.0 / 3.0).abs() < 1e-12);
    }
}
