//! Same seed, same loss curve: training with the fast CPU path follows candle's reference ops
//! within float noise.

use std::path::Path;

use candle_core::Device;
use gan_models::kernels::Kernels;
use gan_models::Architecture;
use gan_train::data::mnist::{self, Split};
use gan_train::training::checkpoint::Models;
use gan_train::training::rng::permutation;
use gan_train::training::trainer::train_step;

fn losses(backend: Kernels) -> Vec<(f32, f32)> {
    let data = mnist::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist"),
        Split::Train,
    )
    .unwrap();
    let config = Architecture::from_name("mnist-cdcgan", 1)
        .unwrap()
        .config(data.info.clone())
        .unwrap();
    let mut models = Models::classic(config, 4, backend, &Device::Cpu).unwrap();
    let order = permutation(4, 0, data.len());
    (0..10)
        .map(|step| {
            let (real, labels) = data
                .batch(&order[step * 32..(step + 1) * 32], &Device::Cpu)
                .unwrap();
            let s = train_step(&mut models, &real, labels.as_ref(), 4, step as u64).unwrap();
            (s.loss_d, s.loss_g)
        })
        .collect()
}

#[test]
fn fast_path_follows_the_reference_loss_curve() {
    let fast = losses(Kernels::Fast);
    let reference = losses(Kernels::Candle);
    for (step, ((fd, fg), (rd, rg))) in fast.iter().zip(&reference).enumerate() {
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-3 * b.abs().max(1.0);
        assert!(
            close(*fd, *rd) && close(*fg, *rg),
            "step {step}: fast ({fd}, {fg}) vs reference ({rd}, {rg})"
        );
    }
}
