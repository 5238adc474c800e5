//! Counter-based random streams: every random draw is a function of (seed, purpose, index), so
//! a resumed run draws exactly what an uninterrupted one would, and the "RNG state" to save is
//! just the seed and the step.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

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
