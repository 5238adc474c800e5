//! Named recipes: `shipped`, what the models in `models/pretrained/` were trained with, and
//! `classic`, the PyTorch reference's DCGAN recipe.

use crate::architecture::ArchitectureOptions;
use crate::training::recipe::{LossKind, Recipe};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// The shipped model's architecture options and recipe for the architecture being trained.
    Shipped,
    /// BCE with the non-saturating G loss, no label smoothing, no EMA, no augmentation.
    Classic,
}

/// EMA decay of the shipped models.
const SHIPPED_EMA_DECAY: f64 = 0.999;

impl Preset {
    /// Sets the options this preset names, leaving the others as they are.
    pub fn apply(self, arch: &mut ArchitectureOptions, recipe: &mut Recipe, labelled_digits: bool) {
        match self {
            Preset::Classic => *recipe = Recipe::default(),
            Preset::Shipped => {
                *recipe = Recipe {
                    loss: LossKind::Hinge,
                    label_smoothing: 0.0,
                    ema_decay: SHIPPED_EMA_DECAY,
                    diff_augment: false,
                    ..*recipe
                };
                if arch.resolved_name(labelled_digits) == "mnist-cdcgan" {
                    arch.projection = true;
                    arch.spectral_norm = true;
                    arch.deep_d = true;
                    arch.g_full_res = true;
                } else {
                    arch.ngf = 32;
                    arch.ndf = 32;
                    arch.minibatch_stddev = true;
                    recipe.diff_augment = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_is_the_model_cards_recipe() {
        let (mut arch, mut recipe) = (ArchitectureOptions::default(), Recipe::default());
        Preset::Shipped.apply(&mut arch, &mut recipe, true);
        let mnist = arch.build(1, true).unwrap();
        assert_eq!(
            serde_json::to_value(&mnist).unwrap(),
            serde_json::json!({"name": "mnist-cdcgan", "width": 1, "spectral_norm": true, "projection": true,
                               "full_res": true, "deep_d": true})
        );
        assert_eq!((recipe.loss, recipe.ema_decay), (LossKind::Hinge, 0.999));

        let (mut arch, mut recipe) = (ArchitectureOptions::default(), Recipe::default());
        Preset::Shipped.apply(&mut arch, &mut recipe, false);
        let faces = arch.build(3, false).unwrap();
        assert_eq!(
            serde_json::to_value(&faces).unwrap(),
            serde_json::json!({"name": "dcgan64", "channels": 3, "latent": 100, "ngf": 32, "ndf": 32,
                               "minibatch_stddev": true})
        );
        assert!(recipe.diff_augment && recipe.loss == LossKind::Hinge);
    }

    #[test]
    fn shipped_keeps_the_options_it_does_not_name() {
        let mut arch = ArchitectureOptions::default();
        let mut recipe = Recipe {
            classifier_weight: 2.0,
            augment_keeps_colour: true,
            ..Recipe::default()
        };
        Preset::Shipped.apply(&mut arch, &mut recipe, false);
        assert_eq!(recipe.classifier_weight, 2.0);
        assert!(recipe.augment_keeps_colour && recipe.diff_augment);
        recipe.validate().unwrap();
    }

    #[test]
    fn classic_turns_the_recipe_back() {
        let (mut arch, mut recipe) = (ArchitectureOptions::default(), Recipe::default());
        recipe.ema_decay = 0.999;
        Preset::Classic.apply(&mut arch, &mut recipe, true);
        assert_eq!(recipe, Recipe::default());
        assert_eq!(arch, ArchitectureOptions::default());
    }
}
