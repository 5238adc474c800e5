//! `--verify`: the exported ONNX through ONNX Runtime against candle's eval-mode forward pass.

use std::path::Path;

use candle_core::{Device, Tensor};
use gan_contract::OnnxGenerator;
use gan_models::LoadedGenerator;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::error::{ExportError, Result};

pub const DEFAULT_BATCHES: [usize; 3] = [1, 3, 64];
pub const TOLERANCE: f32 = 1e-4;

/// Max |candle − ORT| for one batch size.
#[derive(Debug, Clone, Copy)]
pub struct Parity {
    pub batch: usize,
    pub max_abs_diff: f32,
}

/// Runs `onnx` in ONNX Runtime and `loaded` in candle on the same random inputs (seeded by
/// `seed`: latents, and uniformly random classes or attribute classes) at each batch size;
/// fails if any difference exceeds [`TOLERANCE`].
pub fn verify(
    onnx: &[u8],
    loaded: &LoadedGenerator,
    batches: &[usize],
    seed: u64,
    ort_lib: Option<&Path>,
) -> Result<Vec<Parity>> {
    let mut session = OnnxGenerator::from_bytes(onnx, ort_lib, None)?;
    session.info()?;
    let g = &loaded.config.generator;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut results = Vec::new();
    for &n in batches {
        let z: Vec<f32> = (0..n * g.latent_dim)
            .map(|_| rng.sample(StandardNormal))
            .collect();
        let classes = g.condition_classes();
        let conditions: Vec<i64> = (0..n)
            .flat_map(|_| {
                classes
                    .iter()
                    .map(|&c| rng.gen_range(0..c as i64))
                    .collect::<Vec<_>>()
            })
            .collect();

        let zt = Tensor::from_vec(z.clone(), (n, g.latent_dim), &Device::Cpu)?;
        let values: Vec<u32> = conditions.iter().map(|&l| l as u32).collect();
        let lt = match (g.num_classes, classes.len()) {
            (_, 0) => None,
            (0, a) => Some(Tensor::from_vec(values, (n, a), &Device::Cpu)?),
            _ => Some(Tensor::from_vec(values, n, &Device::Cpu)?),
        };
        let expected = loaded.generator.forward_t(&zt, lt.as_ref(), false)?;
        let expected = expected.flatten_all()?.to_vec1::<f32>()?;

        let got = session.generate(&z, &conditions)?;
        if got.len() != expected.len() {
            return Err(ExportError::Invalid(format!(
                "ONNX Runtime returned {} values, candle {}",
                got.len(),
                expected.len()
            )));
        }
        let max_abs_diff = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        if max_abs_diff.is_nan() || max_abs_diff > TOLERANCE {
            return Err(ExportError::Mismatch {
                diff: max_abs_diff,
                batch: n,
                limit: TOLERANCE,
            });
        }
        results.push(Parity {
            batch: n,
            max_abs_diff,
        });
    }
    Ok(results)
}
