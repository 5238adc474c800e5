//! `--verify`: the exported ONNX through ONNX Runtime against candle's eval-mode forward pass.

use std::path::Path;

use candle_core::{Device, Tensor};
use gan_models::LoadedGenerator;
use ort::session::Session;
use ort::value::TensorRef;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::error::{ExportError, Result};
use crate::graph::{INPUT_LABEL, INPUT_Z, OUTPUT_IMAGE};

pub const DEFAULT_BATCHES: [usize; 3] = [1, 3, 64];
pub const TOLERANCE: f32 = 1e-4;

/// Max |candle − ORT| for one batch size.
#[derive(Debug, Clone, Copy)]
pub struct Parity {
    pub batch: usize,
    pub max_abs_diff: f32,
}

fn runtime(e: impl std::fmt::Display) -> ExportError {
    ExportError::Runtime(e.to_string())
}

/// Runs `onnx` in ONNX Runtime and `loaded` in candle on the same random inputs (seeded by
/// `seed`) at each batch size; fails if any difference exceeds [`TOLERANCE`].
pub fn verify(
    onnx: &[u8],
    loaded: &LoadedGenerator,
    batches: &[usize],
    seed: u64,
    ort_lib: Option<&Path>,
) -> Result<Vec<Parity>> {
    let rt = gan_ort::init(ort_lib)?;
    let mut session = Session::builder(&rt.environment)
        .map_err(runtime)?
        .commit_from_memory(onnx)
        .map_err(runtime)?;
    let g = &loaded.config.generator;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut results = Vec::new();
    for &n in batches {
        let z: Vec<f32> = (0..n * g.latent_dim)
            .map(|_| rng.sample(StandardNormal))
            .collect();
        let labels: Vec<i64> = (0..n)
            .map(|_| rng.gen_range(0..g.num_classes.max(1) as i64))
            .collect();

        let zt = Tensor::from_vec(z.clone(), (n, g.latent_dim), &Device::Cpu)?;
        let lt = (g.num_classes > 0)
            .then(|| {
                Tensor::from_vec(
                    labels.iter().map(|&l| l as u32).collect::<Vec<_>>(),
                    n,
                    &Device::Cpu,
                )
            })
            .transpose()?;
        let expected = loaded.generator.forward_t(&zt, lt.as_ref(), false)?;
        let expected = expected.flatten_all()?.to_vec1::<f32>()?;

        let z_in =
            TensorRef::from_array_view(([n, g.latent_dim], z.as_slice())).map_err(runtime)?;
        let outputs = if g.num_classes > 0 {
            let l_in = TensorRef::from_array_view(([n], labels.as_slice())).map_err(runtime)?;
            session.run(ort::inputs![INPUT_Z => z_in, INPUT_LABEL => l_in])
        } else {
            session.run(ort::inputs![INPUT_Z => z_in])
        }
        .map_err(runtime)?;
        let (_, got) = outputs[OUTPUT_IMAGE]
            .try_extract_tensor::<f32>()
            .map_err(runtime)?;
        if got.len() != expected.len() {
            return Err(ExportError::Runtime(format!(
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
