//! Training throughput of the reference architectures on synthetic batches (data loading
//! excluded), printed as a table; `scripts/bench-train` runs it beside the PyTorch anchor.

use std::time::Instant;

use candle_core::{Device, Tensor};
use gan_models::kernels::Kernels;
use gan_models::{Architecture, DatasetInfo};

use crate::error::Result;
use crate::training::checkpoint::Models;
use crate::training::rng::{normal, stream, Purpose};
use crate::training::trainer::train_step;

pub struct BenchRow {
    pub architecture: &'static str,
    pub batch: usize,
    pub steps: usize,
    /// Median over the timed steps.
    pub images_per_s: f64,
}

pub fn bench(
    arch: &Architecture,
    backend: Kernels,
    batch: usize,
    warmup: usize,
    steps: usize,
    device: &Device,
) -> Result<BenchRow> {
    let info = match arch {
        Architecture::MnistCdcgan { .. } => DatasetInfo {
            name: "synthetic".into(),
            class_names: (0..10).map(|d| d.to_string()).collect(),
            attributes: vec![],
            attribution: String::new(),
        },
        Architecture::Dcgan64 { .. } => DatasetInfo {
            name: "synthetic".into(),
            class_names: vec![],
            attributes: vec![],
            attribution: String::new(),
        },
    };
    let config = arch.config(info)?;
    let classes = config.generator.num_classes;
    let image = config.image_shape()?;
    let mut models = Models::classic(config, 0, backend, device)?;
    let n = batch * image.iter().product::<usize>();
    let mut rng = stream(1, Purpose::Noise, 0);
    let real: Vec<f32> = normal(&mut rng, n)
        .into_iter()
        .map(|v| v.clamp(-1.0, 1.0))
        .collect();
    let real = Tensor::from_vec(real, (batch, image[0], image[1], image[2]), device)?;
    let labels = (classes > 0)
        .then(|| {
            Tensor::from_vec(
                (0..batch as u32)
                    .map(|i| i % classes as u32)
                    .collect::<Vec<_>>(),
                batch,
                device,
            )
        })
        .transpose()?;
    let mut times = Vec::with_capacity(steps);
    for step in 0..warmup + steps {
        let t = Instant::now();
        train_step(&mut models, &real, labels.as_ref(), 0, step as u64)?;
        device.synchronize()?;
        if step >= warmup {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    Ok(BenchRow {
        architecture: arch.name(),
        batch,
        steps,
        images_per_s: batch as f64 / median,
    })
}
