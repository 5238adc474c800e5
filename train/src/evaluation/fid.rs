//! Fréchet distance between Gaussians fitted to two feature sets (FID, Heusel et al. 2017):
//! `|μ₁ − μ₂|² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½`, in f64 with nalgebra's symmetric
//! eigendecomposition for the matrix square roots.

use nalgebra::{DMatrix, DVector, SymmetricEigen};

use crate::error::{Result, TrainError};

/// Mean and covariance of a feature set.
pub struct Gaussian {
    mean: DVector<f64>,
    cov: DMatrix<f64>,
}

impl Gaussian {
    /// Fits `features` (`n × dim`, row-major); needs at least two samples.
    pub fn fit(features: &[f32], dim: usize) -> Result<Self> {
        let n = features.len() / dim.max(1);
        if dim == 0 || n < 2 || features.len() != n * dim {
            return Err(TrainError::Metric(format!(
                "cannot fit a Gaussian to {} values of dimension {dim}",
                features.len()
            )));
        }
        let x = DMatrix::from_row_iterator(n, dim, features.iter().map(|&v| v as f64));
        let mean = x.row_mean().transpose();
        let mut centered = x;
        for mut row in centered.row_iter_mut() {
            row -= mean.transpose();
        }
        let cov = centered.transpose() * &centered / (n as f64 - 1.0);
        Ok(Self { mean, cov })
    }

    pub fn frechet_distance(&self, other: &Gaussian) -> f64 {
        let diff = &self.mean - &other.mean;
        let root = sqrt_psd(&self.cov);
        let product = &root * &other.cov * &root;
        let cross: f64 = SymmetricEigen::new((&product + product.transpose()) / 2.0)
            .eigenvalues
            .iter()
            .map(|&l| l.max(0.0).sqrt())
            .sum();
        (diff.dot(&diff) + self.cov.trace() + other.cov.trace() - 2.0 * cross).max(0.0)
    }
}

/// Square root of a symmetric positive semi-definite matrix (round-off negatives clamped).
fn sqrt_psd(m: &DMatrix<f64>) -> DMatrix<f64> {
    let eig = SymmetricEigen::new(m.clone());
    let roots = eig.eigenvalues.map(|l| l.max(0.0).sqrt());
    &eig.eigenvectors * DMatrix::from_diagonal(&roots) * eig.eigenvectors.transpose()
}

/// FID between two feature sets.
pub fn fid(a: &[f32], b: &[f32], dim: usize) -> Result<f64> {
    Ok(Gaussian::fit(a, dim)?.frechet_distance(&Gaussian::fit(b, dim)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    fn sample(n: usize, dim: usize, mean: f64, std: f64, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let d = Normal::new(mean, std).unwrap();
        (0..n * dim).map(|_| d.sample(&mut rng) as f32).collect()
    }

    #[test]
    fn zero_for_a_set_against_itself() {
        let a = sample(500, 8, 0.0, 1.0, 1);
        assert!(fid(&a, &a, 8).unwrap() < 1e-6);
    }

    #[test]
    fn matches_the_closed_form_for_isotropic_gaussians() {
        // N(0, I) vs N(m·1, s²·I) in d dims: d·m² + d·(1 − s)².
        let (d, m, s) = (4, 0.5, 2.0);
        let a = sample(40_000, d, 0.0, 1.0, 2);
        let b = sample(40_000, d, m, s, 3);
        let want = d as f64 * (m * m + (1.0 - s) * (1.0 - s));
        let got = fid(&a, &b, d).unwrap();
        assert!((got - want).abs() < 0.1 * want, "{got} vs {want}");
    }

    #[test]
    fn refuses_too_few_samples() {
        assert!(fid(&[1.0, 2.0], &[1.0, 2.0], 2).is_err());
    }
}
