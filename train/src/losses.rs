//! GAN losses on raw logits.

use candle_core::{Result, Tensor};

/// Mean binary cross-entropy of `logits` against a constant `target`, in the form that cannot
/// overflow: `relu(x) − x·t + log(1 + exp(−|x|))` (candle-nn's version overflows past |x| ≈ 17).
pub fn bce_with_logits(logits: &Tensor, target: f64) -> Result<Tensor> {
    let softplus_neg_abs = logits.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
    (logits.relu()? - (logits * target)?)?
        .add(&softplus_neg_abs)?
        .mean_all()
}

/// Mean of sigmoid(logits): the "D(x)" and "D(G(z))" columns of the metrics.
pub fn mean_probability(logits: &Tensor) -> Result<f32> {
    candle_nn::ops::sigmoid(logits)?
        .mean_all()?
        .to_scalar::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_the_textbook_formula_and_stays_finite() {
        let x = Tensor::new(&[-3f32, 0.0, 2.0], &Device::Cpu).unwrap();
        let got = bce_with_logits(&x, 1.0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let want: f32 = [-3f32, 0.0, 2.0]
            .iter()
            .map(|&v| -(1.0 / (1.0 + (-v).exp())).ln())
            .sum::<f32>()
            / 3.0;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        let big = Tensor::new(&[100f32, -100.0], &Device::Cpu).unwrap();
        let loss = bce_with_logits(&big, 0.0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((loss - 50.0).abs() < 1e-4, "{loss}");
    }
}
