//! The training recipe beyond Adam: the loss, label smoothing, an EMA of G and augmentation. It is stored in
//! the checkpoint, so a resumed run keeps the recipe it started with.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// The adversarial loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Binary cross-entropy for D, non-saturating −log D(G(z)) for G (DCGAN).
    Bce,
    /// Hinge: D minimises relu(1 − D(x)) + relu(1 + D(G(z))), G minimises −D(G(z)).
    Hinge,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    pub loss: LossKind,
    /// One-sided label smoothing: D's target for real images is `1 − label_smoothing` (BCE only).
    pub label_smoothing: f64,
    /// Decay of the exponential moving average of G's weights; 0 keeps no EMA.
    pub ema_decay: f64,
    /// DiffAugment (colour, translation, cutout) on everything D sees.
    #[serde(default)]
    pub diff_augment: bool,
    /// DiffAugment leaves colours alone (translation and cutout only): colour jitter on
    /// everything D sees hides exactly the colour attributes a conditional model is asked for.
    #[serde(default, skip_serializing_if = "is_false")]
    pub augment_keeps_colour: bool,
    /// Weight of the class term (P2GAN's data-and-label matching): D's projection embedding,
    /// read as a classifier of its features, is trained to name the real images' conditions,
    /// and G to make its images read as the conditions it was asked for. 0: projection only.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub classifier_weight: f64,
    /// The class term weighs each class by 1/√(its training share) (normalised), so rare
    /// classes (glasses, earrings) are learnt and drawn, not left to the commonest one.
    #[serde(default, skip_serializing_if = "is_false")]
    pub class_balance: bool,
    /// The attributes G's training fakes ask for are drawn from the training shares raised to
    /// this power (renormalised): 1 the training mix, 0 every class equally, so G practises
    /// rare classes more often than the data shows them. Samples and the EMA's BatchNorm
    /// re-measurement keep the training mix, as the device does.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub request_power: f64,
    /// Weight of a pixel term (pix2pix's L1): G's training fakes ask for the real batch's own
    /// attributes, and G also minimises the mean |fake − real|. Sound only where the labels
    /// decide the image (DiceBear's nine parts do); 0: off.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reconstruction_weight: f64,
    /// Each epoch draws its labelled images with replacement, an image weighted by its rarest
    /// attribute class, `(classes in the column × the class's share)^(−power)` and at least 1:
    /// D, the class term and the pixel term then see rare classes (a 2 % pair of glasses)
    /// several times as often, which the class term's balance weights alone did not make G
    /// draw. 0: off, every image once per epoch.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub oversample_rare: f64,
}

fn one() -> f64 {
    1.0
}

fn is_one(p: &f64) -> bool {
    *p == 1.0
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(w: &f64) -> bool {
    *w == 0.0
}

impl Default for Recipe {
    /// The classic DCGAN recipe (what checkpoints without a stored recipe were trained with).
    fn default() -> Self {
        Self {
            loss: LossKind::Bce,
            label_smoothing: 0.0,
            ema_decay: 0.0,
            diff_augment: false,
            augment_keeps_colour: false,
            classifier_weight: 0.0,
            class_balance: false,
            request_power: 1.0,
            reconstruction_weight: 0.0,
            oversample_rare: 0.0,
        }
    }
}

impl Recipe {
    pub fn validate(&self) -> Result<()> {
        if !(0.0..0.5).contains(&self.label_smoothing) {
            return Err(TrainError::Setting(format!(
                "label smoothing must be in [0, 0.5), not {}",
                self.label_smoothing
            )));
        }
        if self.label_smoothing > 0.0 && self.loss != LossKind::Bce {
            return Err(TrainError::Setting(
                "label smoothing applies to the bce loss only".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return Err(TrainError::Setting(format!(
                "the EMA decay must be in [0, 1), not {}",
                self.ema_decay
            )));
        }
        if !(self.classifier_weight >= 0.0 && self.classifier_weight.is_finite()) {
            return Err(TrainError::Setting(format!(
                "the classifier weight must be a finite number ≥ 0, not {}",
                self.classifier_weight
            )));
        }
        if self.class_balance && self.classifier_weight == 0.0 {
            return Err(TrainError::Setting(
                "class balance weighs the class term: it needs --classifier-weight".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.request_power) {
            return Err(TrainError::Setting(format!(
                "the request power must be in [0, 1], not {}",
                self.request_power
            )));
        }
        if !(self.reconstruction_weight >= 0.0 && self.reconstruction_weight.is_finite()) {
            return Err(TrainError::Setting(format!(
                "the reconstruction weight must be a finite number ≥ 0, not {}",
                self.reconstruction_weight
            )));
        }
        if !(self.oversample_rare >= 0.0 && self.oversample_rare.is_finite()) {
            return Err(TrainError::Setting(format!(
                "the rare-class oversampling power must be a finite number ≥ 0, not {}",
                self.oversample_rare
            )));
        }
        if self.reconstruction_weight > 0.0 && self.request_power != 1.0 {
            return Err(TrainError::Setting(
                "with the reconstruction term G's fakes ask for the real batch's attributes: \
                 there is no drawn mix for --request-power to reweigh"
                    .into(),
            ));
        }
        if self.augment_keeps_colour && !self.diff_augment {
            return Err(TrainError::Setting(
                "keeping colours is a DiffAugment policy: it needs --diff-augment".into(),
            ));
        }
        Ok(())
    }
}
