//! The digit judge: a small CNN trained on MNIST by this project. Its accuracy on a generator's
//! requested digits says whether conditioning works, and its penultimate features are the space
//! FID is measured in (no network from the internet needed).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor};
use gan_models::checkpoint::{write_tensor_file, KIND_KEY};
use gan_models::net::Net;
use gan_models::{Layer, NetConfig, Params, TensorFile};
use indicatif::ProgressBar;

use crate::data::dataset::Dataset;
use crate::error::{Result, TrainError};
use crate::training::optim::{Adam, AdamConfig};
use crate::training::rng::{permutation, stream, Purpose};

/// Width of the feature vector FID is computed on.
pub const FEATURES: usize = 128;
pub const CLASSES: usize = 10;
const KIND: &str = "judge";
const FEATURES_PREFIX: &str = "features";
const HEAD_PREFIX: &str = "head";
const ACCURACY_KEY: &str = "test_accuracy";
/// Images per forward pass when judging.
const CHUNK: usize = 500;

/// Conv(1→32, k4 s2) → LReLU → Conv(32→64, k4 s2) → BN → LReLU → Linear(3136→128) → ReLU.
fn features_config() -> NetConfig {
    let conv = |i, o, bias| Layer::Conv2d {
        in_channels: i,
        out_channels: o,
        kernel: 4,
        stride: 2,
        padding: 1,
        bias,
    };
    NetConfig {
        input: vec![1, 28, 28],
        layers: vec![
            conv(1, 32, true),
            Layer::LeakyRelu { slope: 0.2 },
            conv(32, 64, false),
            Layer::BatchNorm2d { channels: 64 },
            Layer::LeakyRelu { slope: 0.2 },
            Layer::Flatten,
            Layer::Linear {
                inputs: 64 * 7 * 7,
                outputs: FEATURES,
                bias: true,
            },
            Layer::Relu,
        ],
        spectral_norm: false,
    }
}

fn head_config() -> NetConfig {
    NetConfig {
        input: vec![FEATURES],
        layers: vec![Layer::Linear {
            inputs: FEATURES,
            outputs: CLASSES,
            bias: true,
        }],
        spectral_norm: false,
    }
}

pub struct Judge {
    features: Net,
    head: Net,
    /// Accuracy on the MNIST test set, measured when it was trained.
    pub test_accuracy: f64,
}

/// What the judge makes of a set of images.
pub struct Judgement {
    /// Predicted digit per image.
    pub predictions: Vec<u32>,
    /// `n × FEATURES`, row-major.
    pub features: Vec<f32>,
}

impl Judge {
    fn init(seed: u64, device: &Device) -> Result<Self> {
        let mut rng = stream(seed, Purpose::Init, 0);
        let f = features_config();
        let h = head_config();
        Ok(Self {
            features: Net::new(
                f.clone(),
                FEATURES_PREFIX,
                Params::init(&f, FEATURES_PREFIX, &mut rng, device)?,
            ),
            head: Net::new(
                h.clone(),
                HEAD_PREFIX,
                Params::init(&h, HEAD_PREFIX, &mut rng, device)?,
            ),
            test_accuracy: 0.0,
        })
    }

    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let file = TensorFile::read(path, device)?;
        if file.metadata.get(KIND_KEY).map(String::as_str) != Some(KIND) {
            return Err(TrainError::data(
                path,
                "not a judge file (write one with `train classifier`)",
            ));
        }
        let wrap = |e: gan_models::ModelError| TrainError::in_file(path, "", e);
        let net = |config: NetConfig, prefix: &str, tensors: &HashMap<String, Tensor>| {
            Ok::<_, TrainError>(Net::new(
                config.clone(),
                prefix,
                Params::from_tensors(&config, prefix, tensors).map_err(wrap)?,
            ))
        };
        Ok(Self {
            features: net(features_config(), FEATURES_PREFIX, &file.tensors)?,
            head: net(head_config(), HEAD_PREFIX, &file.tensors)?,
            test_accuracy: file
                .metadata
                .get(ACCURACY_KEY)
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN),
        })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let tensors = self
            .features
            .params
            .tensors()
            .chain(self.head.params.tensors())
            .map(|(k, v)| (k.clone(), v));
        let metadata = BTreeMap::from([
            (KIND_KEY.to_string(), KIND.to_string()),
            (
                ACCURACY_KEY.to_string(),
                format!("{:.4}", self.test_accuracy),
            ),
        ]);
        Ok(write_tensor_file(path, tensors, metadata)?)
    }

    fn logits_and_features(&self, images: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        let features = self.features.forward_t(images, train)?;
        Ok((self.head.forward_t(&features, train)?, features))
    }

    /// Predictions and features of `[N, 1, 28, 28]` images in [-1, 1] (inference mode).
    pub fn judge(&self, images: &[f32], device: &Device) -> Result<Judgement> {
        let per = 28 * 28;
        if !images.len().is_multiple_of(per) {
            return Err(TrainError::Metric(format!(
                "the judge takes 1×28×28 images; got {} values",
                images.len()
            )));
        }
        let mut out = Judgement {
            predictions: Vec::with_capacity(images.len() / per),
            features: Vec::with_capacity(images.len() / per * FEATURES),
        };
        for chunk in images.chunks(CHUNK * per) {
            let x = Tensor::from_slice(chunk, (chunk.len() / per, 1, 28, 28), device)?;
            let (logits, features) = self.logits_and_features(&x, false)?;
            out.predictions.extend(logits.argmax(1)?.to_vec1::<u32>()?);
            out.features
                .extend(features.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }
}

/// The pixels of a dataset as `[-1, 1]` floats, the form generators produce.
pub fn images(data: &Dataset) -> Vec<f32> {
    data.pixels()
        .iter()
        .map(|&p| p as f32 / 127.5 - 1.0)
        .collect()
}

/// Share of `predictions` equal to `labels`.
pub fn accuracy(predictions: &[u32], labels: &[u32]) -> f64 {
    let hits = predictions
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count();
    hits as f64 / labels.len().max(1) as f64
}

/// Trains a judge on `train` (Adam from 1e-3, halved every epoch; batch 64; cross-entropy) and
/// scores it on `test`. The decay is what lifts test accuracy over 99 % (docs/quality.md).
pub fn train_judge(
    train: &Dataset,
    test: &Dataset,
    epochs: u64,
    seed: u64,
    device: &Device,
    bar: &ProgressBar,
) -> Result<Judge> {
    if !train.is_labelled() || !test.is_labelled() || train.image_shape() != [1, 28, 28] {
        return Err(TrainError::Dataset(
            "the judge trains on labelled 1×28×28 digits (MNIST)".into(),
        ));
    }
    let mut judge = Judge::init(seed, device)?;
    let mut params = judge.features.params.trainable().clone();
    params.extend(judge.head.params.trainable().clone());
    let mut adam = Adam::new(
        &params,
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            ..AdamConfig::default()
        },
    )?;
    let batch = 64;
    bar.set_length(epochs * (train.len() / batch) as u64);
    for epoch in 0..epochs {
        adam.config.lr = 1e-3 * 0.5f64.powi(epoch as i32);
        let order = permutation(seed, epoch, train.len());
        for indices in order.chunks_exact(batch) {
            let (x, labels) = train.batch(indices, device)?;
            let labels = labels.expect("checked labelled");
            let (logits, _) = judge.logits_and_features(&x, true)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
            adam.step(&loss.backward()?)?;
            bar.inc(1);
        }
        let got = judge.judge(&images(test), device)?;
        judge.test_accuracy = accuracy(&got.predictions, test.labels());
        tracing::info!(
            epoch = epoch + 1,
            test_accuracy = format!("{:.4}", judge.test_accuracy),
            "judge epoch done"
        );
    }
    Ok(judge)
}
