//! The fast CPU path (GEMM convolutions, fused BatchNorm/bias + activation) against candle's
//! reference ops on whole reference networks: outputs, every gradient and the buffers (running
//! statistics, spectral norm's vectors).

mod common;

use candle_core::{Device, Tensor};
use common::rel_err;
use gan_contract::AttributeInfo;
use gan_models::kernels::Kernels;
use gan_models::{Architecture, DatasetInfo, Discriminator, Generator};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn info(classes: usize) -> DatasetInfo {
    DatasetInfo {
        name: "test".into(),
        class_names: (0..classes).map(|c| c.to_string()).collect(),
        attributes: vec![],
        attribution: String::new(),
    }
}

/// Three attributes of 3, 2 and 4 classes.
fn attributes() -> DatasetInfo {
    let attribute = |name: &str, counts: &[usize]| {
        let classes = (0..counts.len()).map(|c| format!("{name}{c}")).collect();
        AttributeInfo::from_counts(name, classes, counts)
    };
    DatasetInfo {
        attributes: vec![
            attribute("hair", &[1, 1, 2]),
            attribute("glasses", &[3, 1]),
            attribute("mouth", &[1, 1, 1, 1]),
        ],
        ..info(0)
    }
}

/// Conditions for `batch` samples: classes cycling, or attribute k's class `(i + k) mod` its
/// count for sample i.
fn conditions(info: &DatasetInfo, batch: usize) -> Option<Tensor> {
    let classes = info.class_names.len();
    if classes > 0 {
        let labels: Vec<u32> = (0..batch as u32).map(|i| i % classes as u32).collect();
        return Some(Tensor::from_vec(labels, batch, &Device::Cpu).unwrap());
    }
    let a = info.attributes.len();
    (a > 0).then(|| {
        let rows: Vec<u32> = (0..batch)
            .flat_map(|i| {
                info.attributes
                    .iter()
                    .enumerate()
                    .map(move |(k, attr)| ((i + k) % attr.classes.len()) as u32)
            })
            .collect();
        Tensor::from_vec(rows, (batch, a), &Device::Cpu).unwrap()
    })
}

/// Class affine layers start at zero (a plain BatchNorm); fixed non-zero values make their
/// forward count too.
fn give_class_affines_values(g: &Generator) {
    for (name, var) in g.net.params.trainable() {
        if name.ends_with(".gain") || name.ends_with(".shift") {
            let values: Vec<f32> = (0..var.elem_count())
                .map(|i| ((i * 53) % 97) as f32 / 97.0 - 0.5)
                .collect();
            var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu).unwrap())
                .unwrap();
        }
    }
}

/// Trains one step's worth of forward+backward through G then D with each backend.
fn compare(arch: Architecture, classes: usize, batch: usize) {
    compare_on(arch, info(classes), batch)
}

fn compare_on(arch: Architecture, info: DatasetInfo, batch: usize) {
    let config = arch.config(info.clone()).unwrap();
    let device = Device::Cpu;
    let run = |backend: Kernels| {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut g = Generator::init(config.generator.clone(), &mut rng, &device).unwrap();
        let mut d = Discriminator::init(config.discriminator.clone(), &mut rng, &device).unwrap();
        give_class_affines_values(&g);
        g.net.kernels = backend;
        d.net.kernels = backend;
        let latent = config.generator.latent_dim;
        let z: Vec<f32> = (0..batch * latent)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let z = Tensor::from_vec(z, (batch, latent), &device).unwrap();
        let labels = conditions(&info, batch);
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
        class_bn: false,
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
        class_bn: false,
    };
    compare(arch, 0, 3);
}

/// The attribute-conditional dcgan64 at test width, with or without conditional BatchNorm.
fn attribute_dcgan64(class_bn: bool) -> Architecture {
    Architecture::Dcgan64 {
        channels: 3,
        latent: 16,
        ngf: 8,
        ndf: 8,
        minibatch_stddev: true,
        spectral_norm: false,
        upsample: false,
        class_bn,
    }
}

#[test]
fn attribute_conditional_dcgan64_fast_path_matches_candle() {
    compare_on(attribute_dcgan64(false), attributes(), 3);
}

#[test]
fn class_bn_dcgan64_fast_path_matches_candle() {
    compare_on(attribute_dcgan64(true), attributes(), 3);
}

#[test]
fn attribute_conditional_networks_see_every_attribute() {
    let arch = Architecture::Dcgan64 {
        channels: 3,
        latent: 16,
        ngf: 4,
        ndf: 4,
        minibatch_stddev: false,
        spectral_norm: true,
        upsample: false,
        class_bn: false,
    };
    let config = arch.config(attributes()).unwrap();
    assert_eq!(config.generator.net.input, [16 + 3 + 2 + 4]);
    assert_eq!(
        config.discriminator.net.input,
        [3, 64, 64],
        "no label planes"
    );
    let device = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let g = Generator::init(config.generator.clone(), &mut rng, &device).unwrap();
    let d = Discriminator::init(config.discriminator.clone(), &mut rng, &device).unwrap();
    let z = Tensor::randn(0f32, 1., (2, 16), &device).unwrap();
    let images = Tensor::randn(0f32, 1., (2, 3, 64, 64), &device).unwrap();
    let base = [[0u32, 0, 0], [2, 1, 3]];
    let run = |rows: [[u32; 3]; 2]| {
        let rows = Tensor::new(&rows, &device).unwrap();
        let fake = g.forward_t(&z, Some(&rows), false).unwrap();
        let logits = d.forward_t(&images, Some(&rows), false).unwrap();
        (fake, logits)
    };
    let (fake0, logits0) = run(base);
    for k in 0..3 {
        let mut changed = base;
        changed[1][k] = 0;
        let (fake, logits) = run(changed);
        let d_logits: Vec<f32> = (&logits - &logits0)
            .unwrap()
            .abs()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(
            d_logits[0] == 0.0 && d_logits[1] > 0.0,
            "attribute {k}: {d_logits:?}"
        );
        let moved = |i: usize| {
            (fake.get(i).unwrap() - fake0.get(i).unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert!(moved(0) == 0.0 && moved(1) > 0.0, "attribute {k}");
    }
    let bad = Tensor::new(&[[0u32, 2, 0], [0, 0, 0]], &device).unwrap();
    let e = g.forward_t(&z, Some(&bad), false).unwrap_err().to_string();
    assert!(e.contains("label 2 is outside 0..2"), "{e}");
    let e = d.forward_t(&images, None, false).unwrap_err().to_string();
    assert!(e.contains("needs the labels"), "{e}");
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
