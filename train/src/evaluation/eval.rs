//! `train eval`: scores a generator (ONNX or safetensors). Digits: the project's judge — accuracy
//! on the requested digits, the class distribution, FID against the MNIST test set next to the
//! real-data floor (training vs test images). Image folders: multi-scale SWD, a diversity ratio
//! and a near-duplicate rate, each next to the same numbers for two disjoint sets of real images.

use std::fmt;
use std::path::Path;

use candle_core::{Device, Tensor};
use gan_contract::{AttributeInfo, Conditioning, OnnxGenerator};
use gan_models::{load_generator_weights, Generator, Weights};

use crate::data::dataset::Dataset;
use crate::error::{Result, TrainError};
use crate::evaluation::diversity::{near_duplicate_rate, quantile, Distances};
use crate::evaluation::fid::Gaussian;
use crate::evaluation::judge::{accuracy, images, Judge};
use crate::evaluation::swd::{swd, ImageSet};
use crate::training::rng::{normal, permutation, stream, Purpose};

/// Latents per generator call.
const CHUNK: usize = 500;
/// MNIST's classes: what a conditional model without contract metadata is taken to draw.
const CLASSES: usize = 10;

/// A generator to score, as it ships.
pub enum Source {
    Candle {
        generator: Generator,
        ema: bool,
        /// What an attribute-conditional generator's conditions are (else empty).
        attributes: Vec<AttributeInfo>,
    },
    Onnx(OnnxGenerator),
}

impl Source {
    /// `.onnx` runs in ONNX Runtime; anything else is read as a safetensors generator file or
    /// training checkpoint (its EMA weights unless `weights` says otherwise).
    pub fn open(
        path: &Path,
        weights: Weights,
        ort_lib: Option<&Path>,
        device: &Device,
    ) -> Result<Self> {
        if path.extension().is_some_and(|e| e == "onnx") {
            return Ok(Source::Onnx(OnnxGenerator::load(path, ort_lib, None)?));
        }
        let loaded = load_generator_weights(path, device, weights)?;
        Ok(Source::Candle {
            generator: loaded.generator,
            ema: loaded.ema,
            attributes: loaded.config.dataset.attributes,
        })
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Source::Candle { ema: true, .. } => "candle, EMA weights",
            Source::Candle { ema: false, .. } => "candle",
            Source::Onnx(_) => "ONNX Runtime",
        }
    }

    fn latent_dim(&self) -> usize {
        match self {
            Source::Candle { generator, .. } => generator.config.latent_dim,
            Source::Onnx(g) => g.signature.latent_dim,
        }
    }

    /// Per-image `[C, H, W]`.
    pub fn image_shape(&self) -> Result<[usize; 3]> {
        match self {
            Source::Candle { generator, .. } => {
                let s = generator.net.config.output_shape()?;
                Ok([s[0], s[1], s[2]])
            }
            Source::Onnx(g) => g.signature.image.ok_or_else(|| {
                TrainError::data(
                    &g.path,
                    "the model's output has no static [N, C, H, W] shape",
                )
            }),
        }
    }

    /// Classes a conditional model takes (an ONNX model with a `label` input and no contract
    /// metadata, such as the PyTorch reference's, is taken as digits).
    fn num_classes(&self) -> usize {
        match self {
            Source::Candle { generator, .. } => generator.config.num_classes,
            Source::Onnx(g) if g.signature.conditioning == Conditioning::Label => {
                g.info().map_or(CLASSES, |info| info.num_classes())
            }
            Source::Onnx(_) => 0,
        }
    }

    /// The attributes an attribute-conditional model is asked for (else empty).
    pub fn attributes(&self) -> Result<Vec<AttributeInfo>> {
        Ok(match self {
            Source::Candle { attributes, .. } => attributes.clone(),
            Source::Onnx(g) => match g.signature.conditioning {
                Conditioning::Attributes(_) => g.info()?.attributes,
                _ => Vec::new(),
            },
        })
    }

    /// `labels`: one per image, or (attribute models, `columns` of them) `images × columns`.
    fn generate(
        &mut self,
        z: &[f32],
        labels: &[u32],
        columns: usize,
        device: &Device,
    ) -> Result<Vec<f32>> {
        match self {
            Source::Candle { generator, .. } => {
                let n = z.len() / generator.config.latent_dim;
                let zt = Tensor::from_slice(z, (n, generator.config.latent_dim), device)?;
                let lt = match (labels.is_empty(), columns) {
                    (true, _) => None,
                    (false, 0) => Some(Tensor::from_slice(labels, n, device)?),
                    (false, a) => Some(Tensor::from_slice(labels, (n, a), device)?),
                };
                let images = generator.forward_t(&zt, lt.as_ref(), false)?;
                Ok(images.flatten_all()?.to_vec1::<f32>()?)
            }
            Source::Onnx(g) => {
                let labels: Vec<i64> = labels.iter().map(|&l| l.into()).collect();
                Ok(g.generate(z, &labels)?)
            }
        }
    }
}

/// `n` images from seeded latents; a conditional model is asked for each class in turn.
/// Returns the images (flat NCHW) and the requested labels (empty when unconditional).
pub fn sample(
    source: &mut Source,
    n: usize,
    seed: u64,
    device: &Device,
) -> Result<(Vec<f32>, Vec<u32>)> {
    let classes = source.num_classes() as u32;
    let labels: Vec<u32> = if classes > 0 {
        (0..n as u32).map(|i| i % classes).collect()
    } else {
        Vec::new()
    };
    let images = sample_requested(source, n, &labels, seed, device)?;
    Ok((images, labels))
}

/// `n` images from seeded latents asked for `requested`: empty (unconditional), a label per
/// image, or `n × attributes` attribute classes.
pub fn sample_requested(
    source: &mut Source,
    n: usize,
    requested: &[u32],
    seed: u64,
    device: &Device,
) -> Result<Vec<f32>> {
    let latent = source.latent_dim();
    let columns = source.attributes()?.len();
    let per = requested.len() / n.max(1);
    let mut rng = stream(seed, Purpose::Eval, 0);
    let mut out = Vec::new();
    for start in (0..n).step_by(CHUNK) {
        let m = CHUNK.min(n - start);
        let z = normal(&mut rng, m * latent);
        let asked = &requested[start * per..(start + m) * per];
        out.extend(source.generate(&z, asked, columns, device)?);
    }
    Ok(out)
}

/// The real side of the comparison: the test set's feature Gaussian and the floor.
pub struct Reference {
    test: Gaussian,
    /// FID between training and test images (equal counts): the best a generator can expect.
    pub floor: f64,
    pub count: usize,
}

impl Reference {
    /// Uses up to `n` test images and as many training images (a seeded random subset).
    pub fn new(
        judge: &Judge,
        train: &Dataset,
        test: &Dataset,
        n: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let count = n.min(test.len()).min(train.len());
        let per: usize = judge.input().iter().product();
        let test_images = images(test);
        let test_features = judge.judge(&test_images[..count * per], device)?.features;
        // Only the chosen training images are converted (the whole set would be 188 MB of f32).
        let chosen = train.floats(
            permutation(seed, u64::MAX, train.len())[..count]
                .iter()
                .copied(),
        );
        let train_features = judge.judge(&chosen, device)?.features;
        let dim = judge.feature_width();
        let test = Gaussian::fit(&test_features, dim)?;
        let floor = Gaussian::fit(&train_features, dim)?.frechet_distance(&test);
        Ok(Self { test, floor, count })
    }
}

/// What `train eval` reports for a digit generator.
#[derive(Debug, Clone)]
pub struct DigitScore {
    pub samples: usize,
    /// Judge accuracy on the requested digits (conditional models only).
    pub accuracy: Option<f64>,
    /// How many samples the judge put in each class.
    pub histogram: [usize; CLASSES],
    /// Entropy of that distribution in bits (log2 10 ≈ 3.32 when uniform, 0 when collapsed).
    pub entropy_bits: f64,
    pub fid: f64,
    pub floor: f64,
}

/// Scores generated digits (`[N, 1, 28, 28]` in [-1, 1]) against `reference`.
pub fn score_digits(
    judge: &Judge,
    generated: &[f32],
    requested: &[u32],
    reference: &Reference,
    device: &Device,
) -> Result<DigitScore> {
    if judge.heads.len() != 1 || judge.heads[0].classes.len() != CLASSES {
        return Err(TrainError::Metric(
            "digits are scored by a judge with one head of ten classes (`train classifier` on MNIST)"
                .into(),
        ));
    }
    let per = 28 * 28;
    if generated.is_empty() || !generated.len().is_multiple_of(per) {
        return Err(TrainError::Metric(format!(
            "the digit judge scores 1×28×28 images; the generator made {} values",
            generated.len()
        )));
    }
    let got = judge.judge(generated, device)?;
    let mut histogram = [0usize; CLASSES];
    for &p in &got.predictions {
        histogram[p as usize] += 1;
    }
    let n = got.predictions.len();
    let entropy_bits = histogram
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n as f64;
            -p * p.log2()
        })
        .sum();
    Ok(DigitScore {
        samples: n,
        accuracy: (!requested.is_empty()).then(|| accuracy(&got.predictions, requested)),
        histogram,
        entropy_bits,
        fid: Gaussian::fit(&got.features, judge.feature_width())?.frechet_distance(&reference.test),
        floor: reference.floor,
    })
}

impl fmt::Display for DigitScore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "samples: {}", self.samples)?;
        match self.accuracy {
            Some(a) => writeln!(
                f,
                "judge accuracy on the requested digits: {:.2} %",
                a * 100.0
            )?,
            None => writeln!(f, "judge accuracy: n/a (unconditional model)")?,
        }
        let shares: Vec<String> = self
            .histogram
            .iter()
            .enumerate()
            .map(|(d, &c)| format!("{d}: {:.1}%", 100.0 * c as f64 / self.samples as f64))
            .collect();
        writeln!(f, "class distribution (judge): {}", shares.join("  "))?;
        writeln!(
            f,
            "class entropy: {:.3} bits (uniform = {:.3})",
            self.entropy_bits,
            (CLASSES as f64).log2()
        )?;
        writeln!(f, "FID (judge features) vs MNIST test: {:.3}", self.fid)?;
        writeln!(
            f,
            "real-data floor (training vs test images): {:.3}",
            self.floor
        )?;
        write!(f, "FID / floor: {:.2}x", self.fid / self.floor.max(1e-12))
    }
}

/// Images compared per side for the pairwise-distance metrics (the distance matrix is n²).
pub(crate) const DIVERSITY_SAMPLE: usize = 1000;
/// Patches per SWD level over the whole set (ProGAN used 2²¹; this keeps memory near 100 MB).
const SWD_DESCRIPTORS: usize = 1 << 17;
/// Real images closer than this quantile of real nearest-neighbour distances count as duplicates.
pub(crate) const DUPLICATE_QUANTILE: f64 = 0.01;

/// The real side for image folders: two disjoint random sets of real images.
pub struct FolderReference {
    a: Vec<f32>,
    b: Vec<f32>,
    channels: usize,
    side: usize,
    mean_distance: f64,
    duplicate_threshold: f64,
    pub count: usize,
}

impl FolderReference {
    /// Up to `n` images per set (at most half the folder each).
    pub fn new(data: &Dataset, n: usize, seed: u64) -> Result<Self> {
        let [channels, h, w] = data.image_shape();
        if h != w {
            return Err(TrainError::Metric(
                "folder metrics need square images".into(),
            ));
        }
        let count = n.min(data.len() / 2);
        if count < 2 {
            return Err(TrainError::Metric(format!(
                "the folder has {} images; the metrics need at least 4",
                data.len()
            )));
        }
        let order = permutation(seed, u64::MAX, data.len());
        let pick = |range: std::ops::Range<usize>| data.floats(order[range].iter().copied());
        let (a, b) = (pick(0..count), pick(count..2 * count));
        let distances = Distances::of(ImageSet::first(
            &a,
            count.min(DIVERSITY_SAMPLE),
            channels,
            h,
        ));
        Ok(Self {
            mean_distance: distances.mean(),
            duplicate_threshold: quantile(&distances.nearest(), DUPLICATE_QUANTILE),
            a,
            b,
            channels,
            side: h,
            count,
        })
    }

    /// The floor: the second real set scored like a generator.
    pub fn floor(&self, seed: u64) -> Result<ImageScore> {
        score_images(&self.b, self, seed)
    }
}

/// What `train eval` reports for an image-folder generator.
#[derive(Debug, Clone)]
pub struct ImageScore {
    pub samples: usize,
    /// SWD × 10³ per Laplacian level, finest (64 px for 64×64 images) first.
    pub swd: Vec<f64>,
    /// Mean pairwise distance of the set over that of real images (1 = as diverse as real).
    pub diversity_ratio: f64,
    /// Share of images with a near-duplicate among the others.
    pub duplicate_rate: f64,
}

impl ImageScore {
    pub fn swd_mean(&self) -> f64 {
        self.swd.iter().sum::<f64>() / self.swd.len().max(1) as f64
    }
}

/// Scores `images` (flat NCHW in [-1, 1], at least `reference.count` of them) against the first
/// real set of `reference`.
pub fn score_images(images: &[f32], reference: &FolderReference, seed: u64) -> Result<ImageScore> {
    let (c, side, n) = (reference.channels, reference.side, reference.count);
    let per = c * side * side;
    if images.len() < n * per {
        return Err(TrainError::Metric(format!(
            "need {n} images of {c}×{side}×{side}; got {} values",
            images.len()
        )));
    }
    let set = |d, m| ImageSet::first(d, m, c, side);
    let patches = (SWD_DESCRIPTORS / n).max(1);
    let swd = swd(set(images, n), set(&reference.a, n), patches, seed)?;
    let distances = Distances::of(set(images, n.min(DIVERSITY_SAMPLE)));
    Ok(ImageScore {
        samples: n,
        swd,
        diversity_ratio: distances.mean() / reference.mean_distance.max(1e-12),
        duplicate_rate: near_duplicate_rate(&distances.nearest(), reference.duplicate_threshold),
    })
}

/// The eval table for an image-folder model: this model next to the real floor.
pub fn image_table(model: &ImageScore, floor: &ImageScore) -> String {
    let levels: Vec<String> = model
        .swd
        .iter()
        .enumerate()
        .map(|(i, _)| format!("SWD×10³ level {i}"))
        .collect();
    let row = |name: &str, s: &ImageScore| {
        let per: Vec<String> = s.swd.iter().map(|v| format!("{v:.2}")).collect();
        format!(
            "| {name} | {} | {:.2} | {:.3} | {:.1} % |",
            per.join(" | "),
            s.swd_mean(),
            s.diversity_ratio,
            s.duplicate_rate * 100.0
        )
    };
    format!(
        "| set | {} | SWD×10³ mean | diversity ratio | near-duplicates |\n|{}\n{}\n{}",
        levels.join(" | "),
        "---|".repeat(levels.len() + 4),
        row("model", model),
        row("real (held-out vs real)", floor)
    )
}
