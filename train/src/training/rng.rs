//! Counter-based random streams: every random draw is a function of (seed, purpose, index), so
//! a resumed run draws exactly what an uninterrupted one would, and the "RNG state" to save is
//! just the seed and the step.

use rand::distributions::WeightedIndex;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::error::{Result, TrainError};

/// What a stream is used for; distinct purposes never share draws.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    Init = 1,
    Shuffle = 2,
    Noise = 3,
    SampleGrid = 4,
    /// Latents, labels and subsets of `train eval`.
    Eval = 5,
    /// Latents that measure the EMA generator's BatchNorm statistics.
    BatchNormStats = 6,
    /// DiffAugment's per-sample colour, shift and cut-out draws.
    Augment = 7,
    /// An epoch's draws of examples by weight (`weighted_order`).
    Oversample = 8,
}

pub fn stream(seed: u64, purpose: Purpose, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(purpose as u64);
    // 2^40 words per index: far more than any one step draws.
    rng.set_word_pos((index as u128) << 40);
    rng
}

pub fn normal(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| StandardNormal.sample(rng)).collect()
}

/// The order in which epoch `epoch` visits `n` examples.
pub fn permutation(seed: u64, epoch: u64, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut stream(seed, Purpose::Shuffle, epoch));
    order
}

/// The examples epoch `epoch` visits when example `i` is drawn with probability ∝ `weights[i]`:
/// as many draws as examples, with replacement, so an epoch is as long as a plain one.
pub fn weighted_order(seed: u64, epoch: u64, weights: &[f64]) -> Result<Vec<usize>> {
    let index = WeightedIndex::new(weights)
        .map_err(|e| TrainError::Setting(format!("cannot draw examples by weight: {e}")))?;
    let mut rng = stream(seed, Purpose::Oversample, epoch);
    Ok((0..weights.len()).map(|_| index.sample(&mut rng)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_order_follows_the_weights_and_repeats_per_epoch() {
        let weights = [1.0, 0.0, 3.0, 1.0];
        let order = weighted_order(7, 2, &weights).unwrap();
        assert_eq!(order.len(), weights.len());
        assert_eq!(order, weighted_order(7, 2, &weights).unwrap());
        let long: Vec<usize> = (0..500)
            .flat_map(|epoch| weighted_order(7, epoch, &weights).unwrap())
            .collect();
        let share = |i| long.iter().filter(|&&j| j == i).count() as f64 / long.len() as f64;
        assert_eq!(share(1), 0.0, "a weight of 0 is never drawn");
        assert!(
            (share(2) - 0.6).abs() < 0.03,
            "share of the heavy example {}",
            share(2)
        );
        assert!((share(0) - 0.2).abs() < 0.03, "{}", share(0));
        assert!(weighted_order(7, 0, &[0.0, 0.0]).is_err());
    }
}
