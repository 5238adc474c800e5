//! The image-folder metrics on synthetic "faces" (random soft blobs): a set against itself is 0,
//! real against real sits at the floor, and a collapsed generator is flagged by every metric.

use gan_models::DatasetInfo;
use gan_train::data::dataset::Dataset;
use gan_train::evaluation::eval::{score_images, FolderReference};
use gan_train::evaluation::swd::{swd, ImageSet};
use rand::{Rng, SeedableRng};

const SIDE: usize = 32;

/// `n` RGB images of a few coloured Gaussian blobs on a random background.
fn blobs(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n * 3 * SIDE * SIDE);
    for _ in 0..n {
        let bg: [f32; 3] = std::array::from_fn(|_| rng.gen_range(0.0..255.0));
        let spots: Vec<(f32, f32, f32, [f32; 3])> = (0..3)
            .map(|_| {
                (
                    rng.gen_range(0.0..SIDE as f32),
                    rng.gen_range(0.0..SIDE as f32),
                    rng.gen_range(2.0..8.0),
                    std::array::from_fn(|_| rng.gen_range(0.0..255.0)),
                )
            })
            .collect();
        for (c, &b) in bg.iter().enumerate() {
            for y in 0..SIDE {
                for x in 0..SIDE {
                    let mut v = b;
                    for (cx, cy, r, col) in &spots {
                        let d2 = (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2);
                        let w = (-d2 / (2.0 * r * r)).exp();
                        v = v * (1.0 - w) + col[c] * w;
                    }
                    out.push(v.round().clamp(0.0, 255.0) as u8);
                }
            }
        }
    }
    out
}

fn dataset(pixels: Vec<u8>) -> Dataset {
    let info = DatasetInfo {
        name: "blobs".into(),
        class_names: vec![],
        attributes: vec![],
        attribution: String::new(),
    };
    Dataset::new(pixels, vec![], [3, SIDE, SIDE], info).unwrap()
}

fn floats(pixels: &[u8]) -> Vec<f32> {
    pixels.iter().map(|&p| p as f32 / 127.5 - 1.0).collect()
}

#[test]
fn swd_of_a_set_against_itself_is_zero() {
    let images = floats(&blobs(40, 1));
    let set = ImageSet::first(&images, 40, 3, SIDE);
    let levels = swd(set, set, 16, 7).unwrap();
    assert_eq!(levels.len(), 2, "32 px and 16 px levels");
    assert!(levels.iter().all(|&v| v == 0.0), "{levels:?}");
}

#[test]
fn real_sits_at_the_floor_and_a_collapsed_set_is_flagged() {
    let reference = FolderReference::new(&dataset(blobs(400, 2)), 200, 0).unwrap();
    let floor = reference.floor(0).unwrap();
    assert!(
        (0.9..1.1).contains(&floor.diversity_ratio),
        "{}",
        floor.diversity_ratio
    );
    assert!(floor.duplicate_rate < 0.05, "{}", floor.duplicate_rate);

    // Fresh real-like images from another seed score like the floor.
    let other = floats(&blobs(200, 3));
    let like_real = score_images(&other, &reference, 0).unwrap();
    assert!(like_real.swd_mean() < 2.0 * floor.swd_mean() + 1.0);
    assert!((0.85..1.15).contains(&like_real.diversity_ratio));

    // A generator that makes the same image every time.
    let one = floats(&blobs(1, 4));
    let collapsed: Vec<f32> = (0..200).flat_map(|_| one.iter().copied()).collect();
    let bad = score_images(&collapsed, &reference, 0).unwrap();
    assert!(bad.diversity_ratio < 0.01, "{}", bad.diversity_ratio);
    assert_eq!(bad.duplicate_rate, 1.0);
    assert!(
        bad.swd_mean() > 5.0 * floor.swd_mean(),
        "collapsed SWD {} vs floor {}",
        bad.swd_mean(),
        floor.swd_mean()
    );
}
