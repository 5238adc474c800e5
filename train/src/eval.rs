//! `train eval`: scores a generator (ONNX or safetensors) with the project's judge — accuracy on
//! the requested digits, the class distribution, and FID against the MNIST test set next to the
//! real-data floor (training vs test images), so every number comes with its scale.

use std::fmt;
use std::path::Path;

use candle_core::{Device, Tensor};
use gan_models::{load_generator_weights, Generator, Weights};

use crate::dataset::Dataset;
use crate::error::{Result, TrainError};
use crate::fid::Gaussian;
use crate::judge::{accuracy, images, Judge, CLASSES, FEATURES};
use crate::onnx_generator::OnnxGenerator;
use crate::rng::{normal, permutation, stream, Purpose};

/// Latents per generator call.
const CHUNK: usize = 500;

/// A generator to score, as it ships.
pub enum Source {
    Candle { generator: Generator, ema: bool },
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
            return Ok(Source::Onnx(OnnxGenerator::open(path, ort_lib)?));
        }
        let loaded = load_generator_weights(path, device, weights)?;
        Ok(Source::Candle {
            generator: loaded.generator,
            ema: loaded.ema,
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
            Source::Onnx(g) => g.latent_dim,
        }
    }

    /// Classes a conditional model takes (an ONNX model with a `label` input is taken as digits).
    fn num_classes(&self) -> usize {
        match self {
            Source::Candle { generator, .. } => generator.config.num_classes,
            Source::Onnx(g) if g.conditional => CLASSES,
            Source::Onnx(_) => 0,
        }
    }

    fn generate(&mut self, z: &[f32], labels: &[u32], device: &Device) -> Result<Vec<f32>> {
        match self {
            Source::Candle { generator, .. } => {
                let n = labels.len().max(z.len() / generator.config.latent_dim);
                let zt = Tensor::from_slice(z, (n, generator.config.latent_dim), device)?;
                let lt = (!labels.is_empty())
                    .then(|| Tensor::from_slice(labels, n, device))
                    .transpose()?;
                let images = generator.forward_t(&zt, lt.as_ref(), false)?;
                Ok(images.flatten_all()?.to_vec1::<f32>()?)
            }
            Source::Onnx(g) => g.generate(z, labels),
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
    let latent = source.latent_dim();
    let classes = source.num_classes() as u32;
    let labels: Vec<u32> = if classes > 0 {
        (0..n as u32).map(|i| i % classes).collect()
    } else {
        Vec::new()
    };
    let mut rng = stream(seed, Purpose::Eval, 0);
    let mut out = Vec::new();
    for start in (0..n).step_by(CHUNK) {
        let m = CHUNK.min(n - start);
        let z = normal(&mut rng, m * latent);
        let l = if labels.is_empty() {
            &[][..]
        } else {
            &labels[start..start + m]
        };
        out.extend(source.generate(&z, l, device)?);
    }
    Ok((out, labels))
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
        let per = 28 * 28;
        let test_images = images(test);
        let test_features = judge.judge(&test_images[..count * per], device)?.features;
        let train_images = images(train);
        let chosen: Vec<f32> = permutation(seed, u64::MAX, train.len())[..count]
            .iter()
            .flat_map(|&i| train_images[i * per..(i + 1) * per].iter().copied())
            .collect();
        let train_features = judge.judge(&chosen, device)?.features;
        let test = Gaussian::fit(&test_features, FEATURES)?;
        let floor = Gaussian::fit(&train_features, FEATURES)?.frechet_distance(&test);
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
    let per = 28 * 28;
    if generated.is_empty() || !generated.len().is_multiple_of(per) {
        return Err(TrainError::Option(format!(
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
        fid: Gaussian::fit(&got.features, FEATURES)?.frechet_distance(&reference.test),
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
