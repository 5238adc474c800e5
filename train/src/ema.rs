//! An exponential moving average of G's weights and BatchNorm statistics. The live weights keep
//! oscillating with the adversarial game; their running average makes better images, so samples
//! and exports use it (Yazıcı et al. 2019, "The Unusual Effectiveness of Averaging in GAN Training").

use gan_models::Generator;

use crate::error::Result;

/// A copy of `g` to start the average from.
pub fn start(g: &Generator) -> Result<Generator> {
    Ok(Generator::new(g.config.clone(), g.net.params.deep_copy()?))
}

/// `ema ← decay · ema + (1 − decay) · live`, tensor by tensor.
pub fn update(ema: &Generator, live: &Generator, decay: f64) -> Result<()> {
    for (name, var) in ema.net.params.vars() {
        let live = live.net.params.get(name)?.as_tensor();
        let mixed = (var.as_tensor().affine(decay, 0.0)? + live.affine(1.0 - decay, 0.0)?)?;
        var.set(&mixed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use gan_models::Architecture;
    use rand::SeedableRng;

    #[test]
    fn moves_towards_the_live_weights_by_one_minus_decay() {
        let config = Architecture::MnistCdcgan { width: 1 }
            .config(crate::mnist::info())
            .unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let live = Generator::init(config.generator.clone(), &mut rng, &Device::Cpu).unwrap();
        let ema = start(&live).unwrap();
        let name = "g.0.weight";
        let before = live
            .net
            .params
            .get(name)
            .unwrap()
            .as_tensor()
            .copy()
            .unwrap();
        let moved = (&before + 1.0).unwrap();
        live.net.params.get(name).unwrap().set(&moved).unwrap();
        update(&ema, &live, 0.9).unwrap();
        let got = ema.net.params.get(name).unwrap().as_tensor();
        let want = (&before + 0.1).unwrap();
        let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
    }
}
