//! `Discriminator::forward_frozen` (G's step) against `forward_t`: the same logits, the same
//! gradients for G, the same running-statistics update, and no gradient for any D parameter.

use candle_core::{Device, Tensor};
use gan_models::kernels::Kernels;
use gan_models::{Architecture, DatasetInfo, Discriminator, Generator};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[test]
fn frozen_d_passes_gradients_to_g_only() {
    let info = DatasetInfo {
        name: "test".into(),
        class_names: (0..10).map(|c| c.to_string()).collect(),
        attributes: vec![],
        attribution: String::new(),
    };
    let config = Architecture::from_name("mnist-cdcgan", 1)
        .unwrap()
        .config(info)
        .unwrap();
    let device = Device::Cpu;
    for backend in [Kernels::Fast, Kernels::Candle] {
        let run = |frozen: bool| {
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let mut g = Generator::init(config.generator.clone(), &mut rng, &device).unwrap();
            let mut d =
                Discriminator::init(config.discriminator.clone(), &mut rng, &device).unwrap();
            (g.net.kernels, d.net.kernels) = (backend, backend);
            let z: Vec<f32> = (0..600)
                .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
                .collect();
            let z = Tensor::from_vec(z, (6, 100), &device).unwrap();
            let labels = Tensor::new(&[0u32, 1, 2, 3, 4, 5], &device).unwrap();
            let fake = g.forward_t(&z, Some(&labels), true).unwrap();
            let logits = if frozen {
                d.forward_frozen(&fake, Some(&labels)).unwrap()
            } else {
                d.forward_t(&fake, Some(&labels), true).unwrap()
            };
            let grads = logits.mean_all().unwrap().backward().unwrap();
            let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let g_grads: Vec<Vec<f32>> = g
                .net
                .params
                .trainable()
                .values()
                .map(|v| flat(grads.get(v.as_tensor()).expect("G gets gradients")))
                .collect();
            let d_has_grads = d
                .net
                .params
                .trainable()
                .values()
                .any(|v| grads.get(v.as_tensor()).is_some());
            let running: Vec<Vec<f32>> = d.net.params.tensors().map(|(_, t)| flat(t)).collect();
            (flat(&logits), g_grads, d_has_grads, running)
        };
        let (logits, g_grads, d_grads, running) = run(false);
        let (f_logits, f_g_grads, f_d_grads, f_running) = run(true);
        assert!(d_grads, "{backend:?}: the ordinary pass trains D");
        assert!(
            !f_d_grads,
            "{backend:?}: the frozen pass computed D gradients"
        );
        assert_eq!(logits, f_logits, "{backend:?}");
        assert_eq!(g_grads, f_g_grads, "{backend:?}");
        assert_eq!(running, f_running, "{backend:?}");
    }
}
