//! The fast CPU path (GEMM convolutions, fused BatchNorm/bias + activation) against candle's
//! reference ops on whole reference networks: outputs, every gradient and the buffers (running
//! statistics, spectral norm's vectors).

mod common;

use candle_core::{Device, Tensor};
use common::rel_err;
use gan_models::kernels::Kernels;
use gan_models::{Architecture, DatasetInfo, Discriminator, Generator};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn info(classes: usize) -> DatasetInfo {
    DatasetInfo {
        name: "test".into(),
        class_names: (0..classes).map(|c| c.to_string()).collect(),
        attribution: String::new(),
    }
}

/// Trains one step's worth of forward+backward through G then D with each backend.
fn compare(arch: Architecture, classes: usize, batch: usize) {
    let config = arch.config(info(classes)).unwrap();
    let device = Device::Cpu;
    let run = |backend: Kernels| {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut g = Generator::init(config.generator.clone(), &mut rng, &device).unwrap();
        let mut d = Discriminator::init(config.discriminator.clone(), &mut rng, &device).unwrap();
        g.net.kernels = backend;
        d.net.kernels = backend;
        let latent = config.generator.latent_dim;
        let z: Vec<f32> = (0..batch * latent)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let z = Tensor::from_vec(z, (batch, latent), &device).unwrap();
        let labels = (classes > 0).then(|| {
            Tensor::from_vec(
                (0..batch as u32)
                    .map(|i| i % classes as u32)
                    .collect::<Vec<_>>(),
                batch,
                &device,
            )
            .unwrap()
        });
        let fake = g.forward_t(&z, labels.as_ref(), true).unwrap();
        let logits = d.forward_t(&fake, labels.as_ref(), true).unwrap();
        let grads = logits
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap()
            .backward()
            .unwrap();
        let mut named = vec![
            ("fake".to_string(), fake.clone()),
            ("logits".to_string(), logits.clone()),
        ];
        for (name, var) in g
            .net
            .params
            .trainable()
            .iter()
            .chain(d.net.params.trainable())
        {
            named.push((
                format!("grad {name}"),
                grads
                    .get(var.as_tensor())
                    .expect("every parameter gets a gradient")
                    .clone(),
            ));
        }
        // Running statistics and power-iteration vectors after the pass.
        for (name, t) in g.net.params.tensors().chain(d.net.params.tensors()) {
            named.push((name.clone(), t.clone()));
        }
        named
    };
    let fast = run(Kernels::Fast);
    let reference = run(Kernels::Candle);
    for ((name, f), (_, r)) in fast.iter().zip(&reference) {
        let e = rel_err(f, r);
        assert!(e <= 1e-4, "{name}: relative error {e}");
    }
}

#[test]
fn mnist_cdcgan_fast_path_matches_candle() {
    compare(Architecture::from_name("mnist-cdcgan", 1).unwrap(), 10, 4);
}

#[test]
fn dcgan64_fast_path_matches_candle() {
    let arch = Architecture::Dcgan64 {
        channels: 3,
        latent: 16,
        ngf: 8,
        ndf: 8,
        minibatch_stddev: true,
        spectral_norm: false,
        upsample: false,
    };
    compare(arch, 0, 3);
}

#[test]
fn upsampling_dcgan64_fast_path_matches_candle() {
    let arch = Architecture::Dcgan64 {
        channels: 3,
        latent: 16,
        ngf: 5,
        ndf: 8,
        minibatch_stddev: false,
        spectral_norm: true,
        upsample: true,
    };
    compare(arch, 0, 3);
}

#[test]
fn discriminator_options_fast_path_matches_candle() {
    let arch = Architecture::MnistCdcgan {
        width: 1,
        spectral_norm: true,
        minibatch_stddev: true,
        projection: true,
        full_res: false,
        deep_d: false,
    };
    compare(arch, 10, 4);
}

#[test]
fn full_res_generator_and_deep_discriminator_fast_path_matches_candle() {
    // The deep D's 3×3 layer with spectral norm and with BatchNorm.
    for spectral_norm in [true, false] {
        let arch = Architecture::MnistCdcgan {
            width: 1,
            spectral_norm,
            minibatch_stddev: false,
            projection: spectral_norm,
            full_res: true,
            deep_d: true,
        };
        compare(arch, 10, 4);
    }
}

#[test]
fn projection_discriminator_sees_the_label() {
    let arch = Architecture::MnistCdcgan {
        width: 1,
        spectral_norm: false,
        minibatch_stddev: false,
        projection: true,
        full_res: false,
        deep_d: false,
    };
    let config = arch.config(info(10)).unwrap();
    assert_eq!(
        config.discriminator.net.input,
        [1, 28, 28],
        "no label planes"
    );
    let device = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let d = Discriminator::init(config.discriminator.clone(), &mut rng, &device).unwrap();
    let images = Tensor::randn(0f32, 1., (4, 1, 28, 28), &device).unwrap();
    let logits = |labels: [u32; 4]| {
        let labels = Tensor::new(&labels, &device).unwrap();
        d.forward_t(&images, Some(&labels), false).unwrap()
    };
    let (a, b) = (logits([0, 1, 2, 3]), logits([0, 1, 2, 9]));
    let diff: Vec<f32> = (a - b).unwrap().abs().unwrap().to_vec1().unwrap();
    assert!(
        diff[..3].iter().all(|&v| v == 0.0) && diff[3] > 0.0,
        "{diff:?}"
    );
    // Only the embeddings of labels in the batch get a gradient.
    let labels = Tensor::new(&[2u32, 2, 5, 5], &device).unwrap();
    let grads = d
        .forward_t(&images, Some(&labels), true)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let (_, embed) = d
        .net
        .params
        .trainable()
        .iter()
        .find(|(name, _)| name.ends_with(".embed"))
        .expect("an embedding");
    let rows: Vec<f32> = grads
        .get(embed.as_tensor())
        .unwrap()
        .abs()
        .unwrap()
        .sum(1)
        .unwrap()
        .to_vec1()
        .unwrap();
    for (label, g) in rows.iter().enumerate() {
        assert_eq!(*g > 0.0, label == 2 || label == 5, "label {label}: {g}");
    }
}
