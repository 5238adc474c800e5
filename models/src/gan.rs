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
        let code = match (classes.is_empty(), labels) {
            (true, None) => None,
            (false, Some(labels)) => Some(one_hot(labels, &classes, z.device())?),
            _ => {
                return Err(ModelError::InvalidConfig(format!(
                "a generator with classes {classes:?} needs conditions exactly when it has classes"
            )))
            }
        };
        let input = match &code {
            Some(code) => Tensor::cat(&[code, z], 1)?,
            None => z.clone(),
        };
        self.net.forward_coded(&input, code.as_ref(), train)
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
            classify: false,
        };
        Ok(self.raw(images, labels, pass)?.flatten_all()?)
    }

    /// [`Self::forward_t`] in training mode for G's step: gradients reach the images only.
    pub fn forward_frozen(&self, images: &Tensor, labels: Option<&Tensor>) -> Result<Tensor> {
        let pass = Pass {
            train: true,
            frozen: true,
            classify: false,
        };
        Ok(self.raw(images, labels, pass)?.flatten_all()?)
    }

    /// A training pass that also reads D's projection embedding as a classifier: the logits
    /// `[N]` and every class's score `[N, Σ classes]` (all condition columns' classes laid end
    /// to end, as in [`crate::labels::code_offsets`]). `frozen` as in [`Self::forward_frozen`].
    pub fn forward_classified(
        &self,
        images: &Tensor,
        labels: &Tensor,
        frozen: bool,
    ) -> Result<(Tensor, Tensor)> {
        if !self.config.is_projection() {
            return Err(ModelError::InvalidConfig(
                "only a discriminator that ends in a projection can classify".into(),
            ));
        }
        let pass = Pass {
            train: true,
            frozen,
            classify: true,
        };
        let out = self.raw(images, Some(labels), pass)?;
        let classes = out.dim(1)? - 1;
        Ok((
            out.narrow(1, 0, 1)?.flatten_all()?,
            out.narrow(1, 1, classes)?,
        ))
    }

    /// The net's output: `[N, 1]` logits, with the class scores after them when classifying.
    fn raw(&self, images: &Tensor, labels: Option<&Tensor>, pass: Pass) -> Result<Tensor> {
        let classes = self.config.condition_classes();
        let planes = match labels {
            Some(labels) if !classes.is_empty() => Some(LabelPlanes {
                labels,
                classes: &classes,
            }),
            _ => None,
        };
        self.net.run(images, planes, None, pass)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Layer, NetConfig};
    use rand::SeedableRng;

    /// The class scores are the projection's own terms: a logit's label-dependent part is the
    /// sum of the scores of its conditions' codes, so changing one sample's conditions changes
    /// its logit by exactly the difference of the scores.
    #[test]
    fn class_scores_are_the_projection_terms_of_every_class() {
        let config = DiscriminatorConfig {
            num_classes: 0,
            attribute_classes: vec![2, 3],
            net: NetConfig {
                input: vec![1, 2, 2],
                layers: vec![
                    Layer::Flatten,
                    Layer::Projection {
                        inputs: 4,
                        classes: 5,
                    },
                ],
                spectral_norm: false,
            },
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let d = Discriminator::init(config, &mut rng, &Device::Cpu).unwrap();
        let embed = Tensor::randn(0f32, 1.0, (5, 4), &Device::Cpu).unwrap();
        d.net.params.get("d.1.embed").unwrap().set(&embed).unwrap();
        let images = Tensor::randn(0f32, 1.0, (2, 1, 2, 2), &Device::Cpu).unwrap();
        let a = Tensor::new(&[[0u32, 2], [1, 0]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[1u32, 1], [1, 0]], &Device::Cpu).unwrap();
        let (logit_a, scores) = d.forward_classified(&images, &a, false).unwrap();
        let logit_b = d.forward_t(&images, Some(&b), true).unwrap();
        assert_eq!(scores.dims(), [2, 5]);
        let s: Vec<Vec<f32>> = scores.to_vec2().unwrap();
        let (la, lb): (Vec<f32>, Vec<f32>) =
            (logit_a.to_vec1().unwrap(), logit_b.to_vec1().unwrap());
        // Sample 0: codes {0, 2 + 2} against {1, 2 + 1}; sample 1 has the same conditions.
        let want = s[0][0] + s[0][4] - s[0][1] - s[0][3];
        assert!(
            (la[0] - lb[0] - want).abs() < 1e-5,
            "{} vs {want}",
            la[0] - lb[0]
        );
        assert!((la[1] - lb[1]).abs() < 1e-6);
        assert!(want.abs() > 1e-3, "the test must see a difference");
        // An unconditional or plane-conditional D cannot classify.
        let plain = DiscriminatorConfig {
            attribute_classes: vec![],
            ..d.config.clone()
        };
        let plain = Discriminator::init(plain, &mut rng, &Device::Cpu).unwrap();
        assert!(plain.forward_classified(&images, &a, false).is_err());
    }
}
