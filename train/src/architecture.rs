//! From the options a run asks for to the [`Architecture`] it trains: defaults by dataset, and
//! a clear refusal of options the chosen architecture does not have.

use gan_models::Architecture;

use crate::error::{Result, TrainError};

/// What a run may ask of its architecture; `Default` is each architecture's reference network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchitectureOptions {
    /// `mnist-cdcgan` or `dcgan64`; `None` picks by dataset (labelled digits or a folder).
    pub name: Option<String>,
    /// mnist-cdcgan: channel multiplier.
    pub width: usize,
    /// dcgan64: G's base width.
    pub ngf: usize,
    /// dcgan64: D's base width.
    pub ndf: usize,
    pub minibatch_stddev: bool,
    pub spectral_norm: bool,
    /// mnist-cdcgan only: a projection discriminator.
    pub projection: bool,
    /// mnist-cdcgan only: G's last step at 28×28.
    pub g_full_res: bool,
    /// mnist-cdcgan only: a third D convolution.
    pub deep_d: bool,
    /// dcgan64 only: G upsamples by nearest neighbour + 3×3 convolution.
    pub g_upsample: bool,
    /// dcgan64 with attributes only: conditional BatchNorm in G.
    pub g_class_bn: bool,
}

impl Default for ArchitectureOptions {
    fn default() -> Self {
        Self {
            name: None,
            width: 1,
            ngf: 64,
            ndf: 64,
            minibatch_stddev: false,
            spectral_norm: false,
            projection: false,
            g_full_res: false,
            deep_d: false,
            g_upsample: false,
            g_class_bn: false,
        }
    }
}

/// The architecture a dataset trains when none is named.
pub fn default_name(labelled_digits: bool) -> &'static str {
    if labelled_digits {
        "mnist-cdcgan"
    } else {
        "dcgan64"
    }
}

impl ArchitectureOptions {
    /// The architecture name this run trains.
    pub fn resolved_name(&self, labelled_digits: bool) -> &str {
        self.name
            .as_deref()
            .unwrap_or_else(|| default_name(labelled_digits))
    }

    /// The architecture for images of `channels` channels; `labelled_digits` picks the default.
    pub fn build(&self, channels: usize, labelled_digits: bool) -> Result<Architecture> {
        let name = self.resolved_name(labelled_digits);
        let mut arch = Architecture::from_name(name, channels)?;
        match &mut arch {
            Architecture::MnistCdcgan {
                width,
                spectral_norm,
                minibatch_stddev,
                projection,
                full_res,
                deep_d,
            } => {
                let only_dcgan64 = [
                    (self.g_upsample, "g-upsample"),
                    (self.g_class_bn, "g-class-bn"),
                ];
                if let Some((_, option)) = only_dcgan64.iter().find(|(on, _)| *on) {
                    return Err(TrainError::Setting(format!(
                        "{option} is an option of dcgan64, not {name}"
                    )));
                }
                *width = self.width.max(1);
                *spectral_norm = self.spectral_norm;
                *minibatch_stddev = self.minibatch_stddev;
                *projection = self.projection;
                *full_res = self.g_full_res;
                *deep_d = self.deep_d;
            }
            Architecture::Dcgan64 {
                ngf,
                ndf,
                minibatch_stddev,
                spectral_norm,
                upsample,
                class_bn,
                ..
            } => {
                let only_mnist = [
                    (
                        self.projection,
                        "projection (dcgan64 ends in one whenever it trains with --labels)",
                    ),
                    (self.g_full_res, "g-full-res"),
                    (self.deep_d, "deep-d"),
                ];
                if let Some((_, option)) = only_mnist.iter().find(|(on, _)| *on) {
                    return Err(TrainError::Setting(format!(
                        "{option} is an option of mnist-cdcgan, not {name}"
                    )));
                }
                *ngf = self.ngf.max(1);
                *ndf = self.ndf.max(1);
                *minibatch_stddev = self.minibatch_stddev;
                *spectral_norm = self.spectral_norm;
                *upsample = self.g_upsample;
                *class_bn = self.g_class_bn;
            }
        }
        Ok(arch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_upsample_is_a_dcgan64_option_only() {
        let opts = ArchitectureOptions {
            g_upsample: true,
            ..ArchitectureOptions::default()
        };
        let e = opts.build(1, true).unwrap_err().to_string();
        assert!(
            e.contains("g-upsample") && e.contains("mnist-cdcgan"),
            "{e}"
        );
        let faces = opts.build(3, false).unwrap();
        assert!(matches!(
            faces,
            Architecture::Dcgan64 { upsample: true, .. }
        ));
    }
}
