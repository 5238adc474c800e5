//! GAN losses on raw logits.

use candle_core::{Result, Tensor};

use crate::training::recipe::{LossKind, Recipe};

/// D's loss on its logits for real and generated images.
pub fn discriminator_loss(recipe: &Recipe, real: &Tensor, fake: &Tensor) -> Result<Tensor> {
    match recipe.loss {
        LossKind::Bce => {
            bce_with_logits(real, 1.0 - recipe.label_smoothing)? + bce_with_logits(fake, 0.0)?
        }
        LossKind::Hinge => {
            real.neg()?.affine(1.0, 1.0)?.relu()?.mean_all()?
                + fake.affine(1.0, 1.0)?.relu()?.mean_all()?
        }
    }
}

/// G's loss on D's logits for its images; both forms keep G's gradient alive while D wins.
pub fn generator_loss(recipe: &Recipe, on_fake: &Tensor) -> Result<Tensor> {
    match recipe.loss {
        LossKind::Bce => bce_with_logits(on_fake, 1.0),
        LossKind::Hinge => on_fake.mean_all()?.neg(),
    }
}

/// Mean binary cross-entropy of `logits` against a constant `target`, in the form that cannot
/// overflow: `relu(x) − x·t + log(1 + exp(−|x|))` (candle-nn's version overflows past |x| ≈ 17).
pub fn bce_with_logits(logits: &Tensor, target: f64) -> Result<Tensor> {
    let softplus_neg_abs = logits.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
    (logits.relu()? - (logits * target)?)?
        .add(&softplus_neg_abs)?
        .mean_all()
}

/// The class term: the mean over condition columns of the cross-entropy between each column's
/// scores (`scores` `[N, Σ classes]`, the columns' classes laid end to end) and the classes in
/// `labels` (u32 `[N]` for one column, `[N, A]` for `classes.len()`).
/// With `balance` (per column, one weight per class), each sample's cross-entropy is weighted
/// by its class's weight (see [`balance_weights`]).
pub fn class_loss(
    scores: &Tensor,
    labels: &Tensor,
    classes: &[usize],
    balance: Option<&[Vec<f64>]>,
) -> Result<Tensor> {
    let offsets = gan_models::labels::code_offsets(classes);
    let mut total: Option<Tensor> = None;
    for (k, (&offset, &count)) in offsets.iter().zip(classes).enumerate() {
        let column = if labels.rank() == 1 {
            labels.clone()
        } else {
            labels.narrow(1, k, 1)?.flatten_all()?
        };
        let column_scores = scores.narrow(1, offset, count)?;
        let ce = match balance {
            None => candle_nn::loss::cross_entropy(&column_scores, &column)?,
            Some(weights) => {
                let nll = candle_nn::ops::log_softmax(&column_scores, 1)?
                    .gather(&column.unsqueeze(1)?, 1)?
                    .flatten_all()?
                    .neg()?;
                let of_class: Vec<f32> = column
                    .to_vec1::<u32>()?
                    .iter()
                    .map(|&c| weights[k][c as usize] as f32)
                    .collect();
                let w = Tensor::from_vec(of_class, nll.dims(), nll.device())?;
                (nll * w)?.mean_all()?
            }
        };
        total = Some(match total {
            Some(t) => (t + ce)?,
            None => ce,
        });
    }
    let total = total.ok_or_else(|| candle_core::Error::Msg("no condition columns".into()))?;
    total / classes.len() as f64
}

/// Per column, a weight per class of `1/√(its training share)`, scaled so the weights average 1
/// over the training mix: a rare class (glasses, 2 % each) weighs ~7× the commonest (none,
/// 90 %) instead of counting 45× less, without the variance of full inverse-frequency weights.
pub fn balance_weights(frequencies: &[Vec<f64>]) -> Vec<Vec<f64>> {
    frequencies
        .iter()
        .map(|f| {
            let norm: f64 = f.iter().map(|p| p.sqrt()).sum();
            f.iter()
                .map(|&p| {
                    if p > 0.0 {
                        1.0 / (p.sqrt() * norm)
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect()
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

    #[test]
    fn hinge_is_zero_beyond_the_margin_and_linear_inside() {
        let hinge = Recipe {
            loss: LossKind::Hinge,
            ..Recipe::default()
        };
        let real = Tensor::new(&[2f32, 0.0], &Device::Cpu).unwrap();
        let fake = Tensor::new(&[-3f32, 1.0], &Device::Cpu).unwrap();
        let d = discriminator_loss(&hinge, &real, &fake).unwrap();
        // real: relu(1-2)=0, relu(1-0)=1 → 0.5; fake: relu(1-3)=0, relu(1+1)=2 → 1.
        assert!((d.to_scalar::<f32>().unwrap() - 1.5).abs() < 1e-6);
        let g = generator_loss(&hinge, &fake).unwrap();
        assert!((g.to_scalar::<f32>().unwrap() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn class_loss_is_the_mean_of_each_columns_cross_entropy() {
        // Two columns of 2 and 3 classes; two samples.
        let scores = Tensor::new(
            &[[1f32, -1.0, 0.5, 0.0, 2.0], [0.0, 3.0, -2.0, 1.0, 0.0]],
            &Device::Cpu,
        )
        .unwrap();
        let labels = Tensor::new(&[[0u32, 2], [1, 0]], &Device::Cpu).unwrap();
        let got = class_loss(&scores, &labels, &[2, 3], None)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let nll = |row: &[f32], want: usize| -> f32 {
            let log_sum = row.iter().map(|v| v.exp()).sum::<f32>().ln();
            log_sum - row[want]
        };
        let first = (nll(&[1.0, -1.0], 0) + nll(&[0.0, 3.0], 1)) / 2.0;
        let second = (nll(&[0.5, 0.0, 2.0], 2) + nll(&[-2.0, 1.0, 0.0], 0)) / 2.0;
        let want = (first + second) / 2.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        // One column: labels [N].
        let one = class_loss(
            &scores.narrow(1, 0, 2).unwrap(),
            &Tensor::new(&[0u32, 1], &Device::Cpu).unwrap(),
            &[2],
            None,
        )
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
        assert!((one - first).abs() < 1e-5, "{one} vs {first}");
    }

    #[test]
    fn balance_weights_average_one_and_favour_rare_classes() {
        let f = vec![vec![0.9, 0.02, 0.08], vec![0.5, 0.5]];
        let w = balance_weights(&f);
        for (fk, wk) in f.iter().zip(&w) {
            let mean: f64 = fk.iter().zip(wk).map(|(p, w)| p * w).sum();
            assert!((mean - 1.0).abs() < 1e-12, "{mean}");
        }
        assert!((w[0][1] / w[0][0] - (0.9f64 / 0.02).sqrt()).abs() < 1e-9);
        assert!(w[1].iter().all(|v| (v - 1.0).abs() < 1e-12), "{:?}", w[1]);
        // Weighted: each sample's cross-entropy times its class's weight, then the mean.
        let scores = Tensor::new(&[[1f32, -1.0, 0.5], [0.0, 3.0, -2.0]], &Device::Cpu).unwrap();
        let labels = Tensor::new(&[1u32, 0], &Device::Cpu).unwrap();
        let got = class_loss(&scores, &labels, &[3], Some(&w[..1]))
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let nll = |row: &[f32], want: usize| -> f64 {
            (row.iter().map(|v| v.exp()).sum::<f32>().ln() - row[want]) as f64
        };
        let want =
            (w[0][1] * nll(&[1.0, -1.0, 0.5], 1) + w[0][0] * nll(&[0.0, 3.0, -2.0], 0)) / 2.0;
        assert!((got as f64 - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn label_smoothing_lowers_the_real_target() {
        let smooth = Recipe {
            label_smoothing: 0.1,
            ..Recipe::default()
        };
        let x = Tensor::new(&[0f32], &Device::Cpu).unwrap();
        let plain = discriminator_loss(&Recipe::default(), &x, &x).unwrap();
        let smoothed = discriminator_loss(&smooth, &x, &x).unwrap();
        // At logit 0 the BCE is log 2 whatever the target; the gradients differ, so check one.
        let big = Tensor::new(&[5f32], &Device::Cpu).unwrap();
        let a = discriminator_loss(&Recipe::default(), &big, &x).unwrap();
        let b = discriminator_loss(&smooth, &big, &x).unwrap();
        assert_eq!(
            plain.to_scalar::<f32>().unwrap(),
            smoothed.to_scalar::<f32>().unwrap()
        );
        // Target 0.9 at logit 5 costs 0.1·5 more than target 1.
        let extra = b.to_scalar::<f32>().unwrap() - a.to_scalar::<f32>().unwrap();
        assert!((extra - 0.5).abs() < 1e-5, "{extra}");
    }
}
