//! Generator and discriminator: a [`Net`] plus the label conditioning around it.

use candle_core::{Device, Tensor};
use rand::Rng;

use crate::config::{DiscriminatorConfig, GeneratorConfig};
use crate::error::{ModelError, Result};
use crate::labels::one_hot;
use crate::net::{LabelPlanes, Net, Pass};
use crate::params::Params;

/// Tensor name prefixes of the two networks in checkpoints and generator files.
pub const G_PREFIX: &str = "g";
pub const D_PREFIX: &str = "d";

pub struct Generator {
    pub config: GeneratorConfig,
    pub net: Net,
}

impl Generator {
    pub fn new(config: GeneratorConfig, params: Params) -> Self {
        let net = Net::new(config.net.clone(), G_PREFIX, params);
        Self { config, net }
    }

    pub fn init(config: GeneratorConfig, rng: &mut impl Rng, device: &Device) -> Result<Self> {
        let params = Params::init(&config.net, G_PREFIX, rng, device)?;
        Ok(Self::new(config, params))
    }

    /// `z`: `[N, latent]`; `labels`: u32 `[N]` (class-conditional) or `[N, A]`
    /// (attribute-conditional), required exactly when the model is conditional.
    pub fn forward_t(&self, z: &Tensor, labels: Option<&Tensor>, train: bool) -> Result<Tensor> {
        let classes = self.config.condition_classes();
        let input = match (classes.is_empty(), labels) {
            (true, None) => z.clone(),
            (false, Some(labels)) => Tensor::cat(&[&one_hot(labels, &classes, z.device())?, z], 1)?,
            _ => {
                return Err(ModelError::InvalidConfig(format!(
                "a generator with classes {classes:?} needs conditions exactly when it has classes"
            )))
            }
        };
        self.net.forward_t(&input, train)
    }
}

pub struct Discriminator {
    pub config: DiscriminatorConfig,
    pub net: Net,
}

impl Discriminator {
    pub fn new(config: DiscriminatorConfig, params: Params) -> Self {
        let net = Net::new(config.net.clone(), D_PREFIX, params);
        Self { config, net }
    }

    pub fn init(config: DiscriminatorConfig, rng: &mut impl Rng, device: &Device) -> Result<Self> {
        let params = Params::init(&config.net, D_PREFIX, rng, device)?;
        Ok(Self::new(config, params))
    }

    /// One logit per image; a conditional D sees the conditions as constant one-hot planes or
    /// in its projection.
    pub fn forward_t(
        &self,
        images: &Tensor,
        labels: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        let pass = Pass {
            train,
            frozen: false,
        };
        self.run(images, labels, pass)
    }

    /// [`Self::forward_t`] in training mode for G's step: gradients reach the images only.
    pub fn forward_frozen(&self, images: &Tensor, labels: Option<&Tensor>) -> Result<Tensor> {
        let pass = Pass {
            train: true,
            frozen: true,
        };
        self.run(images, labels, pass)
    }

    fn run(&self, images: &Tensor, labels: Option<&Tensor>, pass: Pass) -> Result<Tensor> {
        let classes = self.config.condition_classes();
        let planes = match labels {
            Some(labels) if !classes.is_empty() => Some(LabelPlanes {
                labels,
                classes: &classes,
            }),
            _ => None,
        };
        Ok(self.net.run(images, planes, pass)?.flatten_all()?)
    }
}
