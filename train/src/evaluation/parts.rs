//! What a judge with named heads (a faces judge) makes of a generator: FID in its features
//! against the training images beside the floor (held-out images, the same count), per head the
//! total-variation distance between the class mix it sees in generated and in real images, how
//! sure it is, and diversity and near-duplicates in its feature space. Pixel statistics (SWD)
//! cannot tell whether a face has its parts; these can.

use candle_core::Device;

use crate::data::dataset::Dataset;
use crate::error::{Result, TrainError};
use crate::evaluation::diversity::{near_duplicate_rate, quantile, Distances};
use crate::evaluation::eval::{DIVERSITY_SAMPLE, DUPLICATE_QUANTILE};
use crate::evaluation::fid::Gaussian;
use crate::evaluation::judge::{Judge, Judgement};
use crate::training::rng::permutation;

/// What `train eval` reports for a set of images in a judge's terms.
#[derive(Debug, Clone)]
pub struct PartsScore {
    pub samples: usize,
    /// Against the training images, on [`PartsReference::count`] images per side.
    pub fid: f64,
    /// Per head: ½ Σ |generated share − real share| over the classes the judge predicts.
    pub tv: Vec<f64>,
    /// Mean over images and heads of the predicted class's probability.
    pub confidence: f64,
    /// Mean pairwise feature distance over that of real images (1 = as diverse as real).
    pub diversity_ratio: f64,
    /// Share of images with a near-duplicate among the others, in features.
    pub duplicate_rate: f64,
}

impl PartsScore {
    pub fn tv_mean(&self) -> f64 {
        self.tv.iter().sum::<f64>() / self.tv.len().max(1) as f64
    }
}

/// The training images as the judge sees them.
struct RealSide {
    train: Gaussian,
    /// Per head, the class shares the judge predicts for the training images.
    mix: Vec<Vec<f64>>,
    mean_distance: f64,
    duplicate_threshold: f64,
    count: usize,
}

impl RealSide {
    fn score(&self, judge: &Judge, got: &Judgement) -> Result<PartsScore> {
        let dim = judge.feature_width();
        if got.len() < self.count {
            return Err(TrainError::Metric(format!(
                "need {} images; got {}",
                self.count,
                got.len()
            )));
        }
        let fid =
            Gaussian::fit(&got.features[..self.count * dim], dim)?.frechet_distance(&self.train);
        let tv = judge
            .heads
            .iter()
            .enumerate()
            .map(|(k, head)| {
                total_variation(&mix(&got.column(k), head.classes.len()), &self.mix[k])
            })
            .collect();
        let sample = got.len().min(DIVERSITY_SAMPLE);
        let distances = Distances::of_rows(&got.features[..sample * dim], dim);
        Ok(PartsScore {
            samples: got.len(),
            fid,
            tv,
            confidence: got.confidence.iter().map(|&c| c as f64).sum::<f64>()
                / got.confidence.len().max(1) as f64,
            diversity_ratio: distances.mean() / self.mean_distance.max(1e-12),
            duplicate_rate: near_duplicate_rate(&distances.nearest(), self.duplicate_threshold),
        })
    }
}

/// The real side: training images, and the floor scored from held-out ones.
pub struct PartsReference {
    real: RealSide,
    /// The held-out images scored as if generated.
    pub floor: PartsScore,
    /// Whether the floor's images were a held-out set (else training images not in the
    /// reference).
    pub held_out: bool,
}

impl PartsReference {
    /// `count` = min(n, held-out images, training images) of each; without a held-out set, a
    /// disjoint seeded subset of the training images stands in for it.
    pub fn new(
        judge: &Judge,
        train: &Dataset,
        held_out: Option<&Dataset>,
        n: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        if train.image_shape() != judge.input()
            || held_out.is_some_and(|h| h.image_shape() != judge.input())
        {
            return Err(TrainError::Metric(format!(
                "the judge reads {:?} images; the data has {:?}",
                judge.input(),
                train.image_shape()
            )));
        }
        let order = permutation(seed, u64::MAX, train.len());
        let (count, floor_judged) = match held_out {
            Some(h) => {
                let count = n.min(h.len()).min(train.len());
                let pick = permutation(seed, u64::MAX - 1, h.len());
                (count, judge.judge_dataset(h, &pick[..count], device)?)
            }
            None => {
                let count = n.min(train.len() / 2);
                (
                    count,
                    judge.judge_dataset(train, &order[count..2 * count], device)?,
                )
            }
        };
        if count < 2 {
            return Err(TrainError::Metric(format!(
                "FID needs at least 2 images per side; the data gives {count}"
            )));
        }
        let got = judge.judge_dataset(train, &order[..count], device)?;
        let dim = judge.feature_width();
        let sample = count.min(DIVERSITY_SAMPLE);
        let distances = Distances::of_rows(&got.features[..sample * dim], dim);
        let real = RealSide {
            train: Gaussian::fit(&got.features, dim)?,
            mix: judge
                .heads
                .iter()
                .enumerate()
                .map(|(k, head)| mix(&got.column(k), head.classes.len()))
                .collect(),
            mean_distance: distances.mean(),
            duplicate_threshold: quantile(&distances.nearest(), DUPLICATE_QUANTILE),
            count,
        };
        Ok(Self {
            floor: real.score(judge, &floor_judged)?,
            real,
            held_out: held_out.is_some(),
        })
    }

    /// Images per side of each FID.
    pub fn count(&self) -> usize {
        self.real.count
    }

    /// Scores generated images (flat NCHW in [-1, 1], at least [`Self::count`] of them).
    pub fn score(&self, judge: &Judge, images: &[f32], device: &Device) -> Result<PartsScore> {
        self.real.score(judge, &judge.judge(images, device)?)
    }
}

/// Share of each class among `predictions`.
fn mix(predictions: &[u32], classes: usize) -> Vec<f64> {
    let mut counts = vec![0usize; classes];
    for &p in predictions {
        counts[p as usize] += 1;
    }
    let n = predictions.len().max(1) as f64;
    counts.into_iter().map(|c| c as f64 / n).collect()
}

fn total_variation(p: &[f64], q: &[f64]) -> f64 {
    0.5 * p.iter().zip(q).map(|(a, b)| (a - b).abs()).sum::<f64>()
}

/// The eval tables: the model beside the real floor, then each head's class-mix distance.
pub fn parts_table(
    judge: &Judge,
    model: &PartsScore,
    floor: &PartsScore,
    held_out: bool,
) -> String {
    let row = |name: &str, s: &PartsScore| {
        format!(
            "| {name} | {:.3} | {:.2} | {:.4} | {:.4} | {:.3} | {:.1} % |",
            s.fid,
            s.fid / floor.fid.max(1e-12),
            s.tv_mean(),
            s.confidence,
            s.diversity_ratio,
            s.duplicate_rate * 100.0
        )
    };
    let real = if held_out {
        "real: held-out vs training"
    } else {
        "real: other training images"
    };
    let mut out = format!(
        "| set | FID (judge) | FID / floor | attribute TV mean | judge confidence | diversity ratio | near-duplicates |\n\
         |---|---|---|---|---|---|---|\n{}\n{}\n\n\
         | attribute | classes | judge accuracy (held-out) | TV model | TV real |\n|---|---|---|---|---|",
        row("model", model),
        row(real, floor)
    );
    for (k, head) in judge.heads.iter().enumerate() {
        out.push_str(&format!(
            "\n| {} | {} | {:.2} % | {:.4} | {:.4} |",
            head.name,
            head.classes.len(),
            judge.accuracy.get(k).copied().unwrap_or(f64::NAN) * 100.0,
            model.tv[k],
            floor.tv[k]
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_variation_of_class_mixes() {
        assert_eq!(mix(&[0, 0, 1, 2], 4), [0.5, 0.25, 0.25, 0.0]);
        assert_eq!(total_variation(&[0.5, 0.5], &[0.5, 0.5]), 0.0);
        assert_eq!(total_variation(&[1.0, 0.0], &[0.0, 1.0]), 1.0);
        assert!((total_variation(&[0.5, 0.25, 0.25], &[0.25, 0.25, 0.5]) - 0.25).abs() < 1e-12);
    }
}
