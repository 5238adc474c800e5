//! The judge: a small CNN trained by this project on labelled images, one classifier head per
//! label column (the digit for MNIST; hair, eyes, glasses… for a faces folder with a labels
//! CSV). How often it sees the requested class says whether conditioning works, how sure it is
//! and which classes it sees say whether a generator draws the parts, and its penultimate
//! features are the space FID is measured in (no network from the internet needed).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor};
use gan_models::checkpoint::{write_tensor_file, KIND_KEY};
use gan_models::net::Net;
use gan_models::{Layer, NetConfig, Params, TensorFile};
use indicatif::ProgressBar;

use crate::data::dataset::Dataset;
use crate::data::labels::Attribute;
use crate::error::{Result, TrainError};
use crate::training::optim::{Adam, AdamConfig};
use crate::training::rng::{permutation, stream, Purpose};

const KIND: &str = "judge";
const FEATURES_PREFIX: &str = "features";
const HEAD_PREFIX: &str = "head";
const CONFIG_KEY: &str = "features_config";
const HEADS_KEY: &str = "heads";
const ACCURACY_KEY: &str = "accuracy";
/// The one accuracy of a digit judge written before judges had named heads.
const LEGACY_ACCURACY_KEY: &str = "test_accuracy";
/// Images per forward pass when judging.
const CHUNK: usize = 250;
/// The head of a judge trained on MNIST's labels.
const DIGIT_HEAD: &str = "digit";
const BATCH: usize = 64;

/// Stride-2 4×4 convolutions (32 channels, doubling, at most 256; BatchNorm after all but the
/// first; LeakyReLU 0.2) while both sides are even and above 4, then a ReLU feature layer twice
/// the last convolution's width (at most 256). For MNIST this is the digit judge that shipped
/// first: two convolutions to 64×7×7 and 128 features.
pub fn features_config([channels, height, width]: [usize; 3]) -> Result<NetConfig> {
    let (mut c, mut h, mut w, mut out) = (channels, height, width, 32);
    let mut layers = Vec::new();
    while h % 2 == 0 && w % 2 == 0 && h > 4 && w > 4 {
        let first = layers.is_empty();
        layers.push(Layer::Conv2d {
            in_channels: c,
            out_channels: out,
            kernel: 4,
            stride: 2,
            padding: 1,
            bias: first,
        });
        if !first {
            layers.push(Layer::BatchNorm2d { channels: out });
        }
        layers.push(Layer::LeakyRelu { slope: 0.2 });
        (c, h, w, out) = (out, h / 2, w / 2, (out * 2).min(256));
    }
    if layers.is_empty() {
        return Err(TrainError::Setting(format!(
            "the judge needs images with even sides above 4; got {channels}×{height}×{width}"
        )));
    }
    layers.extend([
        Layer::Flatten,
        Layer::Linear {
            inputs: c * h * w,
            outputs: (2 * c).min(256),
            bias: true,
        },
        Layer::Relu,
    ]);
    Ok(NetConfig {
        input: vec![channels, height, width],
        layers,
        spectral_norm: false,
    })
}

/// All heads as one linear layer over the features; head k owns the next `classes` outputs.
fn head_config(features: usize, heads: &[Attribute]) -> NetConfig {
    NetConfig {
        input: vec![features],
        layers: vec![Layer::Linear {
            inputs: features,
            outputs: heads.iter().map(|h| h.classes.len()).sum(),
            bias: true,
        }],
        spectral_norm: false,
    }
}

fn feature_width(config: &NetConfig) -> Result<usize> {
    Ok(config.output_shape()?.iter().product())
}

pub struct Judge {
    features: Net,
    head: Net,
    /// What each head tells apart, in the order of the labels it was trained on.
    pub heads: Vec<Attribute>,
    /// Per head, the accuracy on held-out images measured when it was trained.
    pub accuracy: Vec<f64>,
}

/// What the judge makes of a set of images.
pub struct Judgement {
    pub heads: usize,
    /// Predicted class, `images × heads`.
    pub predictions: Vec<u32>,
    /// The predicted class's probability, `images × heads`.
    pub confidence: Vec<f32>,
    /// `images × features`, row-major.
    pub features: Vec<f32>,
}

impl Judgement {
    pub fn len(&self) -> usize {
        self.predictions.len() / self.heads.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.predictions.is_empty()
    }

    /// Head `k`'s prediction for every image.
    pub fn column(&self, k: usize) -> Vec<u32> {
        column(&self.predictions, self.heads, k)
    }
}

fn column<T: Copy>(values: &[T], width: usize, k: usize) -> Vec<T> {
    values.iter().skip(k).step_by(width).copied().collect()
}

impl Judge {
    fn init(input: [usize; 3], heads: Vec<Attribute>, seed: u64, device: &Device) -> Result<Self> {
        let mut rng = stream(seed, Purpose::Init, 0);
        let f = features_config(input)?;
        let h = head_config(feature_width(&f)?, &heads);
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
            accuracy: vec![0.0; heads.len()],
            heads,
        })
    }

    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let file = TensorFile::read(path, device)?;
        let meta = &file.metadata;
        if meta.get(KIND_KEY).map(String::as_str) != Some(KIND) {
            return Err(TrainError::data(
                path,
                "not a judge file (write one with `train classifier`)",
            ));
        }
        let bad = |key: &str, e: serde_json::Error| {
            TrainError::data(path, format!("metadata `{key}` is not readable: {e}"))
        };
        let features = match meta.get(CONFIG_KEY) {
            Some(json) => serde_json::from_str(json).map_err(|e| bad(CONFIG_KEY, e))?,
            None => features_config([1, 28, 28])?,
        };
        let (heads, accuracy) = match meta.get(HEADS_KEY) {
            Some(json) => {
                let heads: Vec<Attribute> =
                    serde_json::from_str(json).map_err(|e| bad(HEADS_KEY, e))?;
                let accuracy = meta
                    .get(ACCURACY_KEY)
                    .map(|j| serde_json::from_str(j).map_err(|e| bad(ACCURACY_KEY, e)))
                    .transpose()?
                    .unwrap_or_else(|| vec![f64::NAN; heads.len()]);
                (heads, accuracy)
            }
            // The first digit judges: one unnamed head over the ten digits.
            None => (
                vec![digit_head((0..10).map(|d| d.to_string()).collect())],
                vec![meta
                    .get(LEGACY_ACCURACY_KEY)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN)],
            ),
        };
        let wrap = |e: gan_models::ModelError| TrainError::in_file(path, "", e);
        let net = |config: NetConfig, prefix: &str, tensors: &HashMap<String, Tensor>| {
            Ok::<_, TrainError>(Net::new(
                config.clone(),
                prefix,
                Params::from_tensors(&config, prefix, tensors).map_err(wrap)?,
            ))
        };
        let head = head_config(
            feature_width(&features).map_err(|e| TrainError::in_file(path, "", e))?,
            &heads,
        );
        Ok(Self {
            features: net(features, FEATURES_PREFIX, &file.tensors)?,
            head: net(head, HEAD_PREFIX, &file.tensors)?,
            heads,
            accuracy,
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
            (CONFIG_KEY.to_string(), json(&self.features.config)),
            (HEADS_KEY.to_string(), json(&self.heads)),
            (ACCURACY_KEY.to_string(), json(&self.accuracy)),
        ]);
        Ok(write_tensor_file(path, tensors, metadata)?)
    }

    /// `[C, H, W]` of the images it reads.
    pub fn input(&self) -> [usize; 3] {
        let s = &self.features.config.input;
        [s[0], s[1], s[2]]
    }

    /// Width of the feature vector FID is computed on.
    pub fn feature_width(&self) -> usize {
        self.head.config.input[0]
    }

    /// Mean over the heads of [`Judge::accuracy`].
    pub fn mean_accuracy(&self) -> f64 {
        self.accuracy.iter().sum::<f64>() / self.accuracy.len().max(1) as f64
    }

    fn logits_and_features(&self, images: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        let features = self.features.forward_t(images, train)?;
        Ok((self.head.forward_t(&features, train)?, features))
    }

    /// Head `k`'s slice of the logits.
    fn head_logits(&self, logits: &Tensor, k: usize) -> Result<Tensor> {
        let offset = self.heads[..k].iter().map(|h| h.classes.len()).sum();
        Ok(logits.narrow(1, offset, self.heads[k].classes.len())?)
    }

    /// Predictions, confidences and features of flat NCHW images in [-1, 1] (inference mode).
    pub fn judge(&self, images: &[f32], device: &Device) -> Result<Judgement> {
        let input = self.input();
        let per: usize = input.iter().product();
        if images.is_empty() || !images.len().is_multiple_of(per) {
            return Err(TrainError::Metric(format!(
                "the judge takes {}×{}×{} images; got {} values",
                input[0],
                input[1],
                input[2],
                images.len()
            )));
        }
        let n = images.len() / per;
        let heads = self.heads.len();
        let mut out = Judgement {
            heads,
            predictions: vec![0; n * heads],
            confidence: vec![0.0; n * heads],
            features: Vec::with_capacity(n * self.feature_width()),
        };
        for (c, chunk) in images.chunks(CHUNK * per).enumerate() {
            let m = chunk.len() / per;
            let x = Tensor::from_slice(chunk, (m, input[0], input[1], input[2]), device)?;
            let (logits, features) = self.logits_and_features(&x, false)?;
            for k in 0..heads {
                let p =
                    candle_nn::ops::softmax_last_dim(&self.head_logits(&logits, k)?.contiguous()?)?;
                let best = p.argmax(1)?.to_vec1::<u32>()?;
                let sure = p.max(1)?.to_vec1::<f32>()?;
                for i in 0..m {
                    out.predictions[(c * CHUNK + i) * heads + k] = best[i];
                    out.confidence[(c * CHUNK + i) * heads + k] = sure[i];
                }
            }
            out.features
                .extend(features.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }

    /// [`Judge::judge`] of the dataset's images at `indices`, converted a chunk at a time (20,000
    /// faces as floats would be 1 GB).
    pub fn judge_dataset(
        &self,
        data: &Dataset,
        indices: &[usize],
        device: &Device,
    ) -> Result<Judgement> {
        let mut parts = indices
            .chunks(CHUNK)
            .map(|c| self.judge(&data.floats(c.iter().copied()), device));
        let mut all = parts
            .next()
            .ok_or_else(|| TrainError::Metric("no images to judge".into()))??;
        for part in parts {
            let part = part?;
            all.predictions.extend(part.predictions);
            all.confidence.extend(part.confidence);
            all.features.extend(part.features);
        }
        Ok(all)
    }

    /// Per head, the share of `judgement`'s predictions equal to `targets` (`images × heads`).
    pub fn accuracies(&self, judgement: &Judgement, targets: &[u32]) -> Vec<f64> {
        (0..self.heads.len())
            .map(|k| accuracy(&judgement.column(k), &column(targets, self.heads.len(), k)))
            .collect()
    }
}

/// Metadata values are plain data, which always serializes.
fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("plain data serializes")
}

fn digit_head(classes: Vec<String>) -> Attribute {
    Attribute {
        name: DIGIT_HEAD.into(),
        classes,
    }
}

/// What a judge learns from `data`: its heads and each image's class per head
/// (`images × heads`). MNIST has one head, the digit; a folder has one per labels-CSV column.
pub fn targets(data: &Dataset) -> Result<(Vec<Attribute>, Vec<u32>)> {
    if let Some(labels) = data.attributes() {
        return Ok((labels.attributes.clone(), labels.values().to_vec()));
    }
    if data.is_labelled() {
        return Ok((
            vec![digit_head(data.info.class_names.clone())],
            data.labels().to_vec(),
        ));
    }
    Err(TrainError::Dataset(
        "the judge learns from labels: MNIST, or an image folder with a labels CSV".into(),
    ))
}

/// The pixels of a dataset as `[-1, 1]` floats, the form generators produce.
pub fn images(data: &Dataset) -> Vec<f32> {
    data.floats(0..data.len())
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

/// Trains a judge on `train` (Adam from 1e-3, halved every epoch; batch 64; the sum of the
/// heads' cross-entropies) and scores it on the held-out `test`, whose labels must name the same
/// heads and classes. The decay is what lifts MNIST test accuracy over 99 % (docs/quality.md).
pub fn train_judge(
    train: &Dataset,
    test: &Dataset,
    epochs: u64,
    seed: u64,
    device: &Device,
    bar: &ProgressBar,
) -> Result<Judge> {
    let (heads, values) = targets(train)?;
    let (test_heads, test_values) = targets(test)?;
    if test_heads != heads || test.image_shape() != train.image_shape() {
        return Err(TrainError::Dataset(
            "the held-out images must have the training images' shape and label columns".into(),
        ));
    }
    let mut judge = Judge::init(train.image_shape(), heads, seed, device)?;
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
    let h = judge.heads.len();
    bar.set_length(epochs * (train.len() / BATCH) as u64);
    let all: Vec<usize> = (0..test.len()).collect();
    for epoch in 0..epochs {
        adam.config.lr = 1e-3 * 0.5f64.powi(epoch as i32);
        let order = permutation(seed, epoch, train.len());
        for indices in order.chunks_exact(BATCH) {
            let (x, _) = train.batch(indices, device)?;
            let (logits, _) = judge.logits_and_features(&x, true)?;
            let mut loss: Option<Tensor> = None;
            for k in 0..h {
                let wanted: Vec<u32> = indices.iter().map(|&i| values[i * h + k]).collect();
                let wanted = Tensor::from_vec(wanted, indices.len(), device)?;
                let ce = candle_nn::loss::cross_entropy(&judge.head_logits(&logits, k)?, &wanted)?;
                loss = Some(match loss {
                    Some(l) => (l + ce)?,
                    None => ce,
                });
            }
            let loss = loss.expect("at least one head");
            adam.step(&loss.backward()?)?;
            bar.inc(1);
        }
        let got = judge.judge_dataset(test, &all, device)?;
        judge.accuracy = judge.accuracies(&got, &test_values);
        tracing::info!(
            epoch = epoch + 1,
            mean_accuracy = format!("{:.4}", judge.mean_accuracy()),
            worst = format!(
                "{:.4}",
                judge.accuracy.iter().cloned().fold(f64::INFINITY, f64::min)
            ),
            "judge epoch done"
        );
    }
    Ok(judge)
}
