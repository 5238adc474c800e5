//! Architectures as data: a network is a list of [`Layer`]s, so training, export and MAC counting
//! all walk the same description and a new layer type is one enum variant.

use gan_contract::AttributeInfo;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Version of the config/metadata layout written into safetensors and ONNX files.
pub const FORMAT_VERSION: u32 = 1;

/// One layer of a feed-forward network. Shapes are per sample (no batch dimension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Layer {
    Linear {
        inputs: usize,
        outputs: usize,
        bias: bool,
    },
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
    },
    ConvTranspose2d {
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
    },
    BatchNorm2d {
        channels: usize,
    },
    /// Reinterprets the per-sample features as this shape (e.g. `[128, 7, 7]`).
    Reshape {
        shape: Vec<usize>,
    },
    Flatten,
    /// Repeats every pixel `factor`×`factor` times (nearest neighbour). A 3×3 convolution after
    /// it upsamples without the checkerboard a stride-2 transposed convolution leaves where its
    /// windows overlap unevenly (Odena et al. 2016, "Deconvolution and Checkerboard Artifacts").
    Upsample {
        factor: usize,
    },
    /// Appends one channel holding the batch's mean feature standard deviation (ProGAN): D sees
    /// how varied a batch is, so a collapsed G is easy to tell from real data.
    MinibatchStddev,
    Relu,
    LeakyRelu {
        slope: f64,
    },
    Tanh,
    /// A conditional D's output (projection discriminator, Miyato & Koyama 2018): for features
    /// `h` and label `y`, `w·h + b + embed[y]·h`. The label meets D's last features as an inner
    /// product instead of entering as input planes.
    Projection {
        inputs: usize,
        classes: usize,
    },
    /// The class part of conditional BatchNorm (de Vries et al. 2017; SNGAN's and BigGAN's
    /// generators), after a BatchNorm: each sample's channels scaled by `1 + code·gain` and
    /// shifted by `code·shift`, `code` being its conditions' one-hot codes laid end to end
    /// (`classes` wide). Every attribute then steers every resolution, not only G's input. Zero
    /// at the start (SNGAN's per-class γ = 1, β = 0): a plain BatchNorm.
    ClassAffine {
        channels: usize,
        classes: usize,
    },
}

/// Elements of a shape, or None when the product overflows.
fn volume(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Side of a convolution's output, or None when the window does not fit or a term overflows.
fn conv_side(x: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    let padded = x.checked_add(padding.checked_mul(2)?)?;
    Some(padded.checked_sub(kernel)?.checked_div(stride)? + 1)
}

/// Side of a transposed convolution's output, or None when it would be empty or a term
/// overflows.
fn conv_transpose_side(x: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    let full = x.checked_sub(1)?.checked_mul(stride)?.checked_add(kernel)?;
    full.checked_sub(padding.checked_mul(2)?).filter(|&o| o > 0)
}

impl Layer {
    /// Per-sample output shape for a per-sample input shape, or why the layer cannot take it.
    /// Every step is checked: a config read from a file may hold any numbers.
    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let bad = |what: String| Err(ModelError::InvalidConfig(what));
        if input.contains(&0) || volume(input).is_none() {
            return bad(format!("input shape {input:?} is empty or too large"));
        }
        match self {
            Layer::Linear {
                inputs, outputs, ..
            } => match input {
                [n] if n == inputs && *outputs > 0 => Ok(vec![*outputs]),
                _ => bad(format!("linear expects [{inputs}], got {input:?}")),
            },
            Layer::Conv2d {
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
                ..
            } => {
                let side = |x| conv_side(x, *kernel, *stride, *padding);
                match input {
                    [c, h, w] if c == in_channels && *out_channels > 0 => {
                        match (side(*h), side(*w)) {
                            (Some(oh), Some(ow)) => Ok(vec![*out_channels, oh, ow]),
                            _ => bad(format!(
                                "conv2d (kernel {kernel}, stride {stride}, padding {padding}) \
                                 cannot take a {h}×{w} input"
                            )),
                        }
                    }
                    _ => bad(format!(
                        "conv2d expects [{in_channels}, H, W], got {input:?}"
                    )),
                }
            }
            Layer::ConvTranspose2d {
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
                ..
            } => {
                let side = |x| conv_transpose_side(x, *kernel, *stride, *padding);
                match input {
                    [c, h, w] if c == in_channels && *out_channels > 0 && *stride > 0 => {
                        match (side(*h), side(*w)) {
                            (Some(oh), Some(ow)) => Ok(vec![*out_channels, oh, ow]),
                            _ => bad(format!(
                                "conv_transpose2d (kernel {kernel}, stride {stride}, padding \
                                 {padding}) cannot take a {h}×{w} input"
                            )),
                        }
                    }
                    _ => bad(format!(
                        "conv_transpose2d expects [{in_channels}, H, W], got {input:?}"
                    )),
                }
            }
            Layer::BatchNorm2d { channels } => match input {
                [c, _, _] if c == channels => Ok(input.to_vec()),
                _ => bad(format!(
                    "batch_norm2d expects [{channels}, H, W], got {input:?}"
                )),
            },
            Layer::ClassAffine { channels, classes } => match input {
                [c, _, _] if c == channels && *classes > 0 => Ok(input.to_vec()),
                _ => bad(format!(
                    "class_affine over {classes} classes expects [{channels}, H, W], got {input:?}"
                )),
            },
            Layer::Reshape { shape } => {
                if !shape.contains(&0) && volume(shape).is_some() && volume(shape) == volume(input)
                {
                    Ok(shape.clone())
                } else {
                    bad(format!("cannot reshape {input:?} to {shape:?}"))
                }
            }
            Layer::Flatten => Ok(vec![volume(input).expect("checked above")]),
            Layer::Upsample { factor } => {
                let side = |x: usize| x.checked_mul(*factor).filter(|&s| s > 0);
                match input {
                    [c, h, w] => match (side(*h), side(*w)) {
                        (Some(oh), Some(ow)) if volume(&[*c, oh, ow]).is_some() => {
                            Ok(vec![*c, oh, ow])
                        }
                        _ => bad(format!("upsample ×{factor} cannot take a {h}×{w} input")),
                    },
                    _ => bad(format!("upsample expects [C, H, W], got {input:?}")),
                }
            }
            Layer::MinibatchStddev => match input {
                [c, h, w] => Ok(vec![
                    c.checked_add(1).ok_or_else(|| {
                        ModelError::InvalidConfig(format!("{c} channels are too many"))
                    })?,
                    *h,
                    *w,
                ]),
                _ => bad(format!("minibatch_stddev expects [C, H, W], got {input:?}")),
            },
            Layer::Relu | Layer::LeakyRelu { .. } | Layer::Tanh => Ok(input.to_vec()),
            Layer::Projection { inputs, .. } => match input {
                [n] if n == inputs => Ok(vec![1]),
                _ => bad(format!("projection expects [{inputs}], got {input:?}")),
            },
        }
    }

    /// Multiply-accumulates per sample, for the "fits on a Pi" budget.
    pub fn macs(&self, input: &[usize]) -> Result<u64> {
        let out = self.output_shape(input)?;
        let product = |terms: &[usize]| {
            terms
                .iter()
                .try_fold(1u64, |n, &t| n.checked_mul(t as u64))
                .ok_or_else(|| ModelError::InvalidConfig("multiply-accumulates overflow".into()))
        };
        let n = |s: &[usize]| volume(s).expect("output_shape checked it");
        match self {
            Layer::Linear {
                inputs, outputs, ..
            } => product(&[*inputs, *outputs]),
            Layer::Conv2d {
                in_channels,
                kernel,
                ..
            } => product(&[n(&out), *in_channels, *kernel, *kernel]),
            Layer::ConvTranspose2d {
                out_channels,
                kernel,
                ..
            } => product(&[n(input), *out_channels, *kernel, *kernel]),
            Layer::Projection { inputs, .. } => product(&[2, *inputs]),
            // The two code products, then one multiply-add per element.
            Layer::ClassAffine { channels, classes } => Ok(product(&[2, *classes, *channels])?
                + volume(input).expect("output_shape checked it") as u64),
            _ => Ok(0),
        }
    }

    /// The stride-2 4×4 transposed convolution that the first two of `layers` equal, when they
    /// are a ×2 nearest upsample and a 3×3, stride-1, padding-1 convolution (its kernel folds by
    /// [`crate::kernels::upsample::fold_upsample2_conv3x3`]). The fast path, the exporter and the
    /// MAC count run the pair as that one layer: 4 multiply-adds per output pixel and input
    /// channel instead of 9, and no upsampled map in memory.
    pub fn folded_upsample(layers: &[Layer]) -> Option<Layer> {
        match layers {
            [Layer::Upsample { factor: 2 }, Layer::Conv2d {
                in_channels,
                out_channels,
                kernel: 3,
                stride: 1,
                padding: 1,
                bias,
            }, ..] => Some(Layer::ConvTranspose2d {
                in_channels: *in_channels,
                out_channels: *out_channels,
                kernel: 4,
                stride: 2,
                padding: 1,
                bias: *bias,
            }),
            _ => None,
        }
    }

    /// Learnable tensors and their shapes, named relative to the layer.
    pub fn parameters(&self) -> Vec<(&'static str, Vec<usize>)> {
        match self {
            Layer::Linear {
                inputs,
                outputs,
                bias,
            } => with_bias(vec![*outputs, *inputs], *bias, *outputs),
            Layer::Conv2d {
                in_channels,
                out_channels,
                kernel,
                bias,
                ..
            } => with_bias(
                vec![*out_channels, *in_channels, *kernel, *kernel],
                *bias,
                *out_channels,
            ),
            Layer::ConvTranspose2d {
                in_channels,
                out_channels,
                kernel,
                bias,
                ..
            } => with_bias(
                vec![*in_channels, *out_channels, *kernel, *kernel],
                *bias,
                *out_channels,
            ),
            Layer::BatchNorm2d { channels } => {
                vec![("weight", vec![*channels]), ("bias", vec![*channels])]
            }
            Layer::Projection { inputs, classes } => vec![
                ("weight", vec![1, *inputs]),
                ("bias", vec![1]),
                ("embed", vec![*classes, *inputs]),
            ],
            Layer::ClassAffine { channels, classes } => vec![
                ("gain", vec![*classes, *channels]),
                ("shift", vec![*classes, *channels]),
            ],
            _ => vec![],
        }
    }

    /// Whether the layer multiplies by a weight matrix (what spectral norm rescales).
    pub fn is_weighted(&self) -> bool {
        matches!(
            self,
            Layer::Linear { .. }
                | Layer::Conv2d { .. }
                | Layer::ConvTranspose2d { .. }
                | Layer::Projection { .. }
        )
    }

    /// Non-learnable state (BatchNorm running statistics).
    pub fn buffers(&self) -> Vec<(&'static str, Vec<usize>)> {
        match self {
            Layer::BatchNorm2d { channels } => vec![
                ("running_mean", vec![*channels]),
                ("running_var", vec![*channels]),
            ],
            _ => vec![],
        }
    }
}

fn with_bias(weight: Vec<usize>, bias: bool, outputs: usize) -> Vec<(&'static str, Vec<usize>)> {
    let mut v = vec![("weight", weight)];
    if bias {
        v.push(("bias", vec![outputs]));
    }
    v
}

/// A network: per-sample input shape and its layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetConfig {
    pub input: Vec<usize>,
    pub layers: Vec<Layer>,
    /// Every weight is divided by an estimate of its largest singular value (Miyato et al.
    /// 2018), kept by one power-iteration step per training pass in the buffer [`SN_U`]: bounds
    /// each layer's Lipschitz constant, the usual way to steady a D without BatchNorm.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub spectral_norm: bool,
}

/// Name of a spectrally normalised layer's power-iteration vector (length: the weight's dim 0).
pub const SN_U: &str = "sn_u";

impl NetConfig {
    /// Non-learnable state of layer `i`: the layer's own and, under spectral norm, its vector.
    pub fn buffers(&self, i: usize) -> Vec<(&'static str, Vec<usize>)> {
        let layer = &self.layers[i];
        let mut buffers = layer.buffers();
        if self.spectral_norm && layer.is_weighted() {
            let rows = layer.parameters()[0].1[0];
            buffers.push((SN_U, vec![rows]));
        }
        buffers
    }

    /// Checks every layer accepts its input; returns the per-sample output shape. An error
    /// names the layer by index and kind.
    pub fn output_shape(&self) -> Result<Vec<usize>> {
        let mut shape = self.input.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            shape = layer
                .output_shape(&shape)
                .map_err(|e| at_layer(i, layer, e))?;
        }
        Ok(shape)
    }

    /// Multiply-accumulates per sample, as the fast path and the exported graph run the layers:
    /// a [`Layer::folded_upsample`] pair counts as its one transposed convolution.
    pub fn macs(&self) -> Result<u64> {
        let mut shape = self.input.clone();
        let mut total = 0u64;
        let mut i = 0;
        while i < self.layers.len() {
            let layer = &self.layers[i];
            let (macs, consumed) = match Layer::folded_upsample(&self.layers[i..]) {
                Some(folded) => (folded.macs(&shape), 2),
                None => (layer.macs(&shape), 1),
            };
            let macs = macs.map_err(|e| at_layer(i, layer, e))?;
            total = total
                .checked_add(macs)
                .ok_or_else(|| ModelError::InvalidConfig("multiply-accumulates overflow".into()))?;
            for layer in &self.layers[i..i + consumed] {
                shape = layer.output_shape(&shape)?;
            }
            i += consumed;
        }
        Ok(total)
    }
}

/// `e` said about layer `i`.
fn at_layer(i: usize, layer: &Layer, e: ModelError) -> ModelError {
    let kind = serde_json::to_value(layer)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
        .unwrap_or_else(|| "layer".into());
    match e {
        ModelError::InvalidConfig(m) => {
            ModelError::InvalidConfig(format!("layer {i} ({kind}): {m}"))
        }
        other => other,
    }
}

/// What the data is: carried into checkpoints, safetensors and ONNX metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    pub name: String,
    /// Empty for unconditional models.
    pub class_names: Vec<String>,
    /// The labels CSV's columns an attribute-conditional model is trained on, with their
    /// training frequencies; empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<AttributeInfo>,
    pub attribution: String,
}

/// A reference architecture, with its size knobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum Architecture {
    /// Class-conditional DCGAN for 28×28×1 digits; `width` scales the channel counts (1 = reference).
    MnistCdcgan {
        width: usize,
        /// D spectrally normalised instead of batch-normalised.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        spectral_norm: bool,
        /// A minibatch-stddev channel before D's last layer.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        minibatch_stddev: bool,
        /// D ends in a projection of its features onto a label embedding instead of seeing
        /// label planes.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        projection: bool,
        /// G's last upsampling makes [`FULL_RES_CHANNELS`] feature maps at 28×28 (BatchNorm,
        /// ReLU) that a 3×3 convolution turns into the image, instead of one ConvTranspose
        /// going straight from 14×14 features to pixels.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        full_res: bool,
        /// D gets a third convolution (3×3, stride 1) over its 7×7 features before its output
        /// layer: each feature then sees 18×18 pixels instead of 10×10.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        deep_d: bool,
    },
    /// PyTorch examples/dcgan at 64×64 (nz = latent, ngf/ndf feature widths).
    Dcgan64 {
        channels: usize,
        latent: usize,
        ngf: usize,
        ndf: usize,
        /// A minibatch-stddev channel before D's last convolution.
        #[serde(default)]
        minibatch_stddev: bool,
        /// D spectrally normalised instead of batch-normalised.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        spectral_norm: bool,
        /// G doubles its resolution by a nearest [`Layer::Upsample`] and a 3×3 convolution at
        /// each step instead of a stride-2 4×4 ConvTranspose: no checkerboard, and each output
        /// pixel's 3×3 window covers 2×2 input pixels with tied weights. It runs as the 4×4
        /// transposed convolution it equals ([`Layer::folded_upsample`]): the MACs of the
        /// stride-2 G of the same widths.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        upsample: bool,
        /// Attribute-conditional G only: a [`Layer::ClassAffine`] after each of its BatchNorms
        /// (conditional BatchNorm), besides the codes at its input.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        class_bn: bool,
    },
}

impl Architecture {
    pub fn from_name(name: &str, channels: usize) -> Result<Self> {
        match name {
            "mnist-cdcgan" => Ok(Architecture::MnistCdcgan {
                width: 1,
                spectral_norm: false,
                minibatch_stddev: false,
                projection: false,
                full_res: false,
                deep_d: false,
            }),
            "dcgan64" => Ok(Architecture::Dcgan64 {
                channels,
                latent: 100,
                ngf: 64,
                ndf: 64,
                minibatch_stddev: false,
                spectral_norm: false,
                upsample: false,
                class_bn: false,
            }),
            other => Err(ModelError::UnknownArchitecture(other.to_string())),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Architecture::MnistCdcgan { .. } => "mnist-cdcgan",
            Architecture::Dcgan64 { .. } => "dcgan64",
        }
    }

    /// Builds the full model config for a dataset.
    pub fn config(&self, dataset: DatasetInfo) -> Result<ModelConfig> {
        let (generator, discriminator) = match *self {
            Architecture::MnistCdcgan {
                width,
                spectral_norm,
                minibatch_stddev,
                projection,
                full_res,
                deep_d,
            } => mnist_cdcgan(
                width,
                dataset.class_names.len(),
                full_res,
                DiscriminatorOptions {
                    spectral_norm,
                    minibatch_stddev,
                    projection,
                    deep: deep_d,
                },
            ),
            Architecture::Dcgan64 {
                channels,
                latent,
                ngf,
                ndf,
                minibatch_stddev,
                spectral_norm,
                upsample,
                class_bn,
            } => dcgan64(
                channels,
                Widths { latent, ngf, ndf },
                &dataset
                    .attributes
                    .iter()
                    .map(|a| a.classes.len())
                    .collect::<Vec<_>>(),
                Dcgan64Options {
                    minibatch_stddev,
                    spectral_norm,
                    upsample,
                    class_bn,
                },
            )?,
        };
        if matches!(self, Architecture::MnistCdcgan { .. }) && !dataset.attributes.is_empty() {
            return Err(ModelError::InvalidConfig(
                "mnist-cdcgan takes one class label, not attributes: use dcgan64".into(),
            ));
        }
        let config = ModelConfig {
            format_version: FORMAT_VERSION,
            architecture: self.clone(),
            dataset,
            generator,
            discriminator,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Generator: input is `concat(one_hot(label), z)` (class-conditional), `concat(one_hot of
/// each attribute's class, z)` (attribute-conditional: the first layer then adds one learnt
/// embedding per attribute) or `z`; output `[C, H, W]` in [-1, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorConfig {
    pub latent_dim: usize,
    pub num_classes: usize,
    /// Class count of each attribute, in column order (attribute-conditional models only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attribute_classes: Vec<usize>,
    pub net: NetConfig,
}

/// Discriminator: input is the image, with the conditions' one-hot planes appended unless it
/// ends in a [`Layer::Projection`]; output one logit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscriminatorConfig {
    pub num_classes: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attribute_classes: Vec<usize>,
    pub net: NetConfig,
}

/// The class count of each condition a network takes: `[num_classes]` for a class label, the
/// attributes' counts, or none.
fn condition_classes(num_classes: usize, attribute_classes: &[usize]) -> Vec<usize> {
    if num_classes > 0 {
        vec![num_classes]
    } else {
        attribute_classes.to_vec()
    }
}

impl GeneratorConfig {
    pub fn condition_classes(&self) -> Vec<usize> {
        condition_classes(self.num_classes, &self.attribute_classes)
    }
}

impl DiscriminatorConfig {
    pub fn condition_classes(&self) -> Vec<usize> {
        condition_classes(self.num_classes, &self.attribute_classes)
    }

    /// A conditional D that takes its conditions in a final [`Layer::Projection`].
    pub fn is_projection(&self) -> bool {
        !self.condition_classes().is_empty()
            && matches!(self.net.layers.last(), Some(Layer::Projection { .. }))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub format_version: u32,
    pub architecture: Architecture,
    pub dataset: DatasetInfo,
    pub generator: GeneratorConfig,
    pub discriminator: DiscriminatorConfig,
}

impl ModelConfig {
    /// Shape-checks both networks and their conditioning.
    pub fn validate(&self) -> Result<()> {
        let g = &self.generator;
        let d = &self.discriminator;
        if (g.num_classes > 0 && !g.attribute_classes.is_empty())
            || (d.num_classes > 0 && !d.attribute_classes.is_empty())
        {
            return Err(ModelError::InvalidConfig(
                "a model takes a class label or attributes, not both".into(),
            ));
        }
        if g.attribute_classes.contains(&0) {
            return Err(ModelError::InvalidConfig(
                "an attribute has no classes".into(),
            ));
        }
        let classes = g.condition_classes();
        let total = classes.iter().try_fold(0usize, |n, &c| n.checked_add(c));
        let Some(total) = total.filter(|t| t.checked_add(g.latent_dim).is_some()) else {
            return Err(ModelError::InvalidConfig("too many classes".into()));
        };
        if g.net.input != [g.latent_dim + total] {
            return Err(ModelError::InvalidConfig(format!(
                "generator input {:?} does not match latent {} + classes {total}",
                g.net.input, g.latent_dim
            )));
        }
        if g.net.spectral_norm {
            return Err(ModelError::InvalidConfig(
                "spectral norm is a discriminator option; exports assume a plain generator".into(),
            ));
        }
        // With no conditions, `image_shape` below refuses the layer: its own check wants classes.
        for layer in &g.net.layers {
            match layer {
                Layer::ClassAffine { classes, .. } if *classes != total => {
                    return Err(ModelError::InvalidConfig(format!(
                        "a generator class affine layer takes {classes} classes, its conditions \
                         have {total}"
                    )))
                }
                _ => {}
            }
        }
        if d.net
            .layers
            .iter()
            .any(|l| matches!(l, Layer::ClassAffine { .. }))
        {
            return Err(ModelError::InvalidConfig(
                "class affine layers belong in a generator".into(),
            ));
        }
        let image = self.image_shape()?;
        if image.len() != 3 {
            return Err(ModelError::InvalidConfig(format!(
                "generator must output [C, H, W], got {image:?}"
            )));
        }
        if d.condition_classes() != classes {
            return Err(ModelError::InvalidConfig(format!(
                "discriminator takes classes {:?}, generator {classes:?}",
                d.condition_classes()
            )));
        }
        let planes = match d.net.layers.last() {
            Some(Layer::Projection { classes, .. }) if *classes == total => 0,
            Some(Layer::Projection { classes, .. }) => {
                return Err(ModelError::InvalidConfig(format!(
                    "discriminator projects onto {classes} classes, not {total}"
                )))
            }
            _ => total,
        };
        let expected = image[0]
            .checked_add(planes)
            .map(|c| vec![c, image[1], image[2]]);
        if expected.as_ref() != Some(&d.net.input) {
            return Err(ModelError::InvalidConfig(format!(
                "discriminator input {:?} does not match image {image:?} + {planes} label planes",
                d.net.input
            )));
        }
        if d.net.output_shape()? != [1] {
            return Err(ModelError::InvalidConfig(
                "discriminator must output one logit".into(),
            ));
        }
        if !self.dataset.class_names.is_empty() && self.dataset.class_names.len() != g.num_classes {
            return Err(ModelError::InvalidConfig(
                "class names do not match the number of classes".into(),
            ));
        }
        let counts: Vec<usize> = self
            .dataset
            .attributes
            .iter()
            .map(|a| a.classes.len())
            .collect();
        if counts != g.attribute_classes {
            return Err(ModelError::InvalidConfig(format!(
                "the dataset's attributes have {counts:?} classes, the generator takes {:?}",
                g.attribute_classes
            )));
        }
        gan_contract::attributes::check_attributes(&self.dataset.attributes)
            .map_err(|e| ModelError::InvalidConfig(e.to_string()))?;
        Ok(())
    }

    /// `[C, H, W]` of generated images.
    pub fn image_shape(&self) -> Result<Vec<usize>> {
        self.generator.net.output_shape()
    }

    pub fn is_conditional(&self) -> bool {
        !self.generator.condition_classes().is_empty()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("model config serializes")
    }

    pub fn from_json(text: &str) -> Result<Self> {
        let config: Self = serde_json::from_str(text)
            .map_err(|e| ModelError::InvalidConfig(format!("unreadable model config: {e}")))?;
        config.validate()?;
        Ok(config)
    }
}

/// The discriminator variants of `mnist-cdcgan` (the `train` options of the same names).
struct DiscriminatorOptions {
    spectral_norm: bool,
    minibatch_stddev: bool,
    projection: bool,
    deep: bool,
}

/// Feature maps of a `full_res` mnist-cdcgan G at 28×28 (per unit of width): 12 keeps the
/// generator at 9.6 M MACs per image, inside the Pi budget of 10 M (16 would cost 10.4 M).
pub const FULL_RES_CHANNELS: usize = 12;

fn mnist_cdcgan(
    width: usize,
    classes: usize,
    full_res: bool,
    options: DiscriminatorOptions,
) -> (GeneratorConfig, DiscriminatorConfig) {
    let DiscriminatorOptions {
        spectral_norm,
        minibatch_stddev,
        projection,
        deep,
    } = options;
    let (c1, c2) = (128 * width.max(1), 64 * width.max(1));
    let latent = 100;
    let mut generator = GeneratorConfig {
        latent_dim: latent,
        num_classes: classes,
        attribute_classes: vec![],
        net: NetConfig {
            input: vec![latent + classes],
            layers: vec![
                Layer::Linear {
                    inputs: latent + classes,
                    outputs: c1 * 49,
                    bias: false,
                },
                Layer::Reshape {
                    shape: vec![c1, 7, 7],
                },
                Layer::BatchNorm2d { channels: c1 },
                Layer::Relu,
                convt(c1, c2, 2, 1, false),
                Layer::BatchNorm2d { channels: c2 },
                Layer::Relu,
            ],
            spectral_norm: false,
        },
    };
    let g = &mut generator.net.layers;
    if full_res {
        let c3 = FULL_RES_CHANNELS * width.max(1);
        g.extend([
            convt(c2, c3, 2, 1, false),
            Layer::BatchNorm2d { channels: c3 },
            Layer::Relu,
            Layer::Conv2d {
                in_channels: c3,
                out_channels: 1,
                kernel: 3,
                stride: 1,
                padding: 1,
                bias: true,
            },
        ]);
    } else {
        g.push(convt(c2, 1, 2, 1, true));
    }
    g.push(Layer::Tanh);
    let planes = if projection { 0 } else { classes };
    let mut d = vec![
        conv(1 + planes, c2, 2, 1, true),
        Layer::LeakyRelu { slope: 0.2 },
    ];
    d.extend(normalised_conv(c2, c1, 4, 2, spectral_norm));
    d.push(Layer::LeakyRelu { slope: 0.2 });
    if deep {
        d.extend(normalised_conv(c1, c1, 3, 1, spectral_norm));
        d.push(Layer::LeakyRelu { slope: 0.2 });
    }
    if minibatch_stddev {
        d.push(Layer::MinibatchStddev);
    }
    let features = (c1 + minibatch_stddev as usize) * 49;
    d.extend([
        Layer::Flatten,
        if projection {
            Layer::Projection {
                inputs: features,
                classes,
            }
        } else {
            Layer::Linear {
                inputs: features,
                outputs: 1,
                bias: true,
            }
        },
    ]);
    let discriminator = DiscriminatorConfig {
        num_classes: classes,
        attribute_classes: vec![],
        net: NetConfig {
            input: vec![1 + planes, 28, 28],
            layers: d,
            spectral_norm,
        },
    };
    (generator, discriminator)
}

/// A 64×64 DCGAN's sizes: noise length and G's and D's base widths.
struct Widths {
    latent: usize,
    ngf: usize,
    ndf: usize,
}

/// The `dcgan64` variants (the `train` options of the same names).
struct Dcgan64Options {
    minibatch_stddev: bool,
    spectral_norm: bool,
    upsample: bool,
    class_bn: bool,
}

/// PyTorch examples/dcgan at 64×64; with `attributes` (class counts) G takes their one-hot
/// codes beside z, and D ends in a projection onto their embeddings (one per attribute,
/// summed) instead of its last 4×4 convolution, which is the projection's `w·h` term.
fn dcgan64(
    channels: usize,
    Widths { latent, ngf, ndf }: Widths,
    attributes: &[usize],
    Dcgan64Options {
        minibatch_stddev,
        spectral_norm,
        upsample,
        class_bn,
    }: Dcgan64Options,
) -> Result<(GeneratorConfig, DiscriminatorConfig)> {
    let codes: usize = attributes.iter().sum();
    if class_bn && codes == 0 {
        return Err(ModelError::InvalidConfig(
            "class-conditional BatchNorm needs attributes (train with --labels)".into(),
        ));
    }
    // BatchNorm, its class part when asked for, ReLU.
    let normalised = |channels: usize| {
        let mut layers = vec![Layer::BatchNorm2d { channels }];
        if class_bn {
            layers.push(Layer::ClassAffine {
                channels,
                classes: codes,
            });
        }
        layers.push(Layer::Relu);
        layers
    };
    // Each step doubles the side: 4×4 → 8×8 → … → 64×64.
    let double = |cin: usize, cout: usize, bias: bool| {
        if upsample {
            vec![
                Layer::Upsample { factor: 2 },
                Layer::Conv2d {
                    in_channels: cin,
                    out_channels: cout,
                    kernel: 3,
                    stride: 1,
                    padding: 1,
                    bias,
                },
            ]
        } else {
            vec![convt(cin, cout, 2, 1, bias)]
        }
    };
    let mut g = vec![
        Layer::Reshape {
            shape: vec![latent + codes, 1, 1],
        },
        convt(latent + codes, ngf * 8, 1, 0, false),
    ];
    for (cin, cout) in [(8, 4), (4, 2), (2, 1)] {
        g.extend(normalised(ngf * cin));
        g.extend(double(ngf * cin, ngf * cout, false));
    }
    g.extend(normalised(ngf));
    // The upsampling G's last convolution has a bias: no BatchNorm follows it to supply one.
    g.extend(double(ngf, channels, upsample));
    g.push(Layer::Tanh);
    let mut d = vec![
        conv(channels, ndf, 2, 1, false),
        Layer::LeakyRelu { slope: 0.2 },
    ];
    for (cin, cout) in [(1, 2), (2, 4), (4, 8)] {
        d.extend(normalised_conv(ndf * cin, ndf * cout, 4, 2, spectral_norm));
        d.push(Layer::LeakyRelu { slope: 0.2 });
    }
    if minibatch_stddev {
        d.push(Layer::MinibatchStddev);
    }
    let features = ndf * 8 + minibatch_stddev as usize;
    if codes == 0 {
        d.extend([conv(features, 1, 1, 0, false), Layer::Flatten]);
    } else {
        d.extend([
            Layer::Flatten,
            Layer::Projection {
                inputs: features * 16,
                classes: codes,
            },
        ]);
    }
    Ok((
        GeneratorConfig {
            latent_dim: latent,
            num_classes: 0,
            attribute_classes: attributes.to_vec(),
            net: NetConfig {
                input: vec![latent + codes],
                layers: g,
                spectral_norm: false,
            },
        },
        DiscriminatorConfig {
            num_classes: 0,
            attribute_classes: attributes.to_vec(),
            net: NetConfig {
                input: vec![channels, 64, 64],
                layers: d,
                spectral_norm,
            },
        },
    ))
}

/// A padding-1 D convolution followed by BatchNorm, or, under spectral norm (which replaces
/// BatchNorm in D, as in SNGAN), with a bias in BatchNorm's place.
fn normalised_conv(
    cin: usize,
    cout: usize,
    kernel: usize,
    stride: usize,
    spectral_norm: bool,
) -> Vec<Layer> {
    let conv = Layer::Conv2d {
        in_channels: cin,
        out_channels: cout,
        kernel,
        stride,
        padding: 1,
        bias: spectral_norm,
    };
    if spectral_norm {
        vec![conv]
    } else {
        vec![conv, Layer::BatchNorm2d { channels: cout }]
    }
}

fn convt(cin: usize, cout: usize, stride: usize, padding: usize, bias: bool) -> Layer {
    Layer::ConvTranspose2d {
        in_channels: cin,
        out_channels: cout,
        kernel: 4,
        stride,
        padding,
        bias,
    }
}

fn conv(cin: usize, cout: usize, stride: usize, padding: usize, bias: bool) -> Layer {
    Layer::Conv2d {
        in_channels: cin,
        out_channels: cout,
        kernel: 4,
        stride,
        padding,
        bias,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits() -> DatasetInfo {
        DatasetInfo {
            name: "mnist".into(),
            class_names: (0..10).map(|d| d.to_string()).collect(),
            attributes: vec![],
            attribution: String::new(),
        }
    }

    #[test]
    fn reference_shapes_and_macs() {
        let m = Architecture::from_name("mnist-cdcgan", 1)
            .unwrap()
            .config(digits())
            .unwrap();
        assert_eq!(m.image_shape().unwrap(), [1, 28, 28]);
        let macs = m.generator.net.macs().unwrap();
        // 110·6272 + 7·7·128·64·16 + 14·14·64·1·16 = 7.32 M, the "about 7 M" of the issue.
        assert_eq!(macs, 110 * 6272 + 49 * 128 * 64 * 16 + 196 * 64 * 16);
        let f = Architecture::from_name("dcgan64", 3)
            .unwrap()
            .config(DatasetInfo {
                class_names: vec![],
                attributes: vec![],
                ..digits()
            })
            .unwrap();
        assert_eq!(f.image_shape().unwrap(), [3, 64, 64]);
        assert!(f.generator.net.macs().unwrap() > 100_000_000);
    }

    #[test]
    fn full_resolution_generator_stays_inside_the_pi_budget() {
        let arch = Architecture::MnistCdcgan {
            width: 1,
            spectral_norm: false,
            minibatch_stddev: false,
            projection: false,
            full_res: true,
            deep_d: false,
        };
        let m = arch.config(digits()).unwrap();
        assert_eq!(m.image_shape().unwrap(), [1, 28, 28]);
        let c3 = FULL_RES_CHANNELS as u64;
        // The reference up to 14×14, then ConvT(64→c3) to 28×28 and a 3×3 conv to one channel.
        let expected = 110 * 6272 + 49 * 128 * 64 * 16 + 196 * 64 * c3 * 16 + 784 * c3 * 9;
        assert_eq!(m.generator.net.macs().unwrap(), expected);
        assert!(expected <= 10_000_000, "{expected} MACs");
        assert_eq!(ModelConfig::from_json(&m.to_json()).unwrap(), m);
    }

    #[test]
    fn config_round_trips_and_rejects_broken_ones() {
        let m = Architecture::from_name("mnist-cdcgan", 1)
            .unwrap()
            .config(digits())
            .unwrap();
        assert_eq!(ModelConfig::from_json(&m.to_json()).unwrap(), m);
        let mut broken = m.clone();
        broken.generator.net.layers.remove(1);
        assert!(ModelConfig::from_json(&broken.to_json()).is_err());
        assert!(matches!(
            Architecture::from_name("resnet", 1),
            Err(ModelError::UnknownArchitecture(_))
        ));
    }

    /// A config (as read from a generator file or checkpoint) that reshapes to a narrow map and
    /// convolves it: the width would underflow unchecked (a panic in debug and fuzz builds,
    /// wraparound in release); it is refused with the layer named.
    #[test]
    fn narrow_shapes_are_refused_not_underflowed() {
        let net = NetConfig {
            input: vec![6272],
            layers: vec![
                Layer::Reshape {
                    shape: vec![128, 49, 1],
                },
                Layer::Conv2d {
                    in_channels: 128,
                    out_channels: 64,
                    kernel: 4,
                    stride: 2,
                    padding: 1,
                    bias: false,
                },
            ],
            spectral_norm: false,
        };
        let e = net.output_shape().unwrap_err().to_string();
        assert!(e.contains("layer 1 (conv2d)") && e.contains("49×1"), "{e}");
        assert!(net.macs().is_err());
        // The same through a whole config file: D gets that narrow conv after its first layer.
        let mut config = Architecture::from_name("mnist-cdcgan", 1)
            .unwrap()
            .config(digits())
            .unwrap();
        config.discriminator.net.layers.insert(
            0,
            Layer::Reshape {
                shape: vec![11, 784, 1],
            },
        );
        let e = ModelConfig::from_json(&config.to_json())
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer 1 (conv2d)") && e.contains("784×1"), "{e}");

        let narrow = Layer::Conv2d {
            in_channels: 1,
            out_channels: 1,
            kernel: 4,
            stride: 2,
            padding: 1,
            bias: false,
        };
        assert!(
            narrow.output_shape(&[1, 28, 1]).is_err(),
            "width 1 + 2 < kernel 4"
        );
        assert!(narrow.output_shape(&[1, 0, 4]).is_err(), "an empty input");
        let huge = Layer::Reshape {
            shape: vec![usize::MAX, 2],
        };
        assert!(huge.output_shape(&[2]).is_err(), "overflowing volume");
        let wide = Layer::ConvTranspose2d {
            in_channels: 1,
            out_channels: 1,
            kernel: 4,
            stride: usize::MAX,
            padding: 1,
            bias: false,
        };
        assert!(wide.output_shape(&[1, 3, 3]).is_err(), "overflowing stride");
        let up = |factor| Layer::Upsample { factor };
        assert_eq!(up(3).output_shape(&[2, 4, 5]).unwrap(), [2, 12, 15]);
        assert!(up(0).output_shape(&[2, 4, 5]).is_err(), "factor 0");
        assert!(up(usize::MAX).output_shape(&[1, 2, 2]).is_err(), "overflow");
        assert!(up(2).output_shape(&[4]).is_err(), "not an image");
    }

    #[test]
    fn attribute_configs_check_their_attributes_and_old_configs_have_none() {
        let attribute = |name: &str, counts: &[usize]| {
            let classes = (0..counts.len()).map(|c| format!("{name}{c}")).collect();
            AttributeInfo::from_counts(name, classes, counts)
        };
        let faces = DatasetInfo {
            class_names: vec![],
            attributes: vec![attribute("hair", &[2, 1, 1]), attribute("glasses", &[3, 1])],
            ..digits()
        };
        let dcgan = Architecture::from_name("dcgan64", 3).unwrap();
        let m = dcgan.config(faces.clone()).unwrap();
        assert!(m.is_conditional());
        assert_eq!(m.generator.condition_classes(), [3, 2]);
        assert_eq!(m.generator.net.input, [105]);
        assert!(matches!(
            m.discriminator.net.layers.last(),
            Some(Layer::Projection { classes: 5, inputs }) if *inputs == 512 * 16
        ));
        assert_eq!(ModelConfig::from_json(&m.to_json()).unwrap(), m);
        // The dataset's attributes and the networks' class counts must agree.
        let mut broken = m.clone();
        broken.dataset.attributes[1].classes.push("extra".into());
        broken.dataset.attributes[1].frequencies.push(0.0);
        let e = ModelConfig::from_json(&broken.to_json()).unwrap_err();
        assert!(e.to_string().contains("[3, 3] classes"), "{e}");
        let mut both = m.clone();
        both.generator.num_classes = 10;
        assert!(ModelConfig::from_json(&both.to_json()).is_err());
        let mut skewed = m.clone();
        skewed.dataset.attributes[0].frequencies[0] = 0.9;
        let e = ModelConfig::from_json(&skewed.to_json()).unwrap_err();
        assert!(e.to_string().contains("summing to 1"), "{e}");
        // Digits take one label, not attributes.
        let e = Architecture::from_name("mnist-cdcgan", 1)
            .unwrap()
            .config(DatasetInfo {
                class_names: (0..10).map(|d| d.to_string()).collect(),
                ..faces
            })
            .unwrap_err();
        assert!(e.to_string().contains("not attributes"), "{e}");
        // A config written before attributes existed has none and writes none.
        let plain = DatasetInfo {
            class_names: vec![],
            attributes: vec![],
            ..digits()
        };
        let json = dcgan.config(plain).unwrap().to_json();
        assert!(!json.contains("attribute"), "{json}");
    }

    #[test]
    fn upsampling_dcgan64_fits_the_pi_budget_and_keeps_old_configs() {
        let arch = |upsample| Architecture::Dcgan64 {
            channels: 3,
            latent: 100,
            ngf: 22,
            ndf: 32,
            minibatch_stddev: true,
            spectral_norm: false,
            upsample,
            class_bn: false,
        };
        let faces = || DatasetInfo {
            class_names: vec![],
            attributes: vec![],
            ..digits()
        };
        let m = arch(true).config(faces()).unwrap();
        assert_eq!(m.image_shape().unwrap(), [3, 64, 64]);
        // ConvT 100→176 to 4×4, then three ×2 steps to half the channels and the last to 3,
        // each counted as the 4×4 stride-2 transposed conv it runs as (the same count for each
        // of the three): 4 of the 9 MACs per pixel of an upsample + 3×3 conv.
        let step = 176 * 4 * 4 * 88 * 16;
        let expected = 100 * 176 * 16 + 3 * step + 22 * 32 * 32 * 3 * 16;
        assert_eq!(m.generator.net.macs().unwrap(), expected);
        let unfolded = 100 * 176 * 16 + 3 * (8 * 8 * 88 * 176 * 9) + 64 * 64 * 3 * 22 * 9;
        let layer_by_layer: u64 = {
            let mut shape = m.generator.net.input.clone();
            let mut sum = 0;
            for l in &m.generator.net.layers {
                sum += l.macs(&shape).unwrap();
                shape = l.output_shape(&shape).unwrap();
            }
            sum
        };
        assert_eq!(layer_by_layer, unfolded);
        assert_eq!(
            expected * 9,
            (unfolded - 100 * 176 * 16) * 4 + 100 * 176 * 16 * 9
        );
        assert_eq!(ModelConfig::from_json(&m.to_json()).unwrap(), m);
        // Configs written before the option existed read as the stride-2 G, and still write
        // without the key.
        let old = arch(false).config(faces()).unwrap().to_json();
        assert!(!old.contains("upsample"), "{old}");
        assert!(!ModelConfig::from_json(&old)
            .unwrap()
            .generator
            .net
            .layers
            .iter()
            .any(|l| matches!(l, Layer::Upsample { .. })));
    }
}
