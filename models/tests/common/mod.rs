//! Helpers shared by the fast-path tests.

use candle_core::{Device, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// max |a − b| / max |b|: the relative error the gradient checks bound by 1e-4.
pub fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    let max = |t: Tensor| {
        t.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    max((a - b).unwrap()) / max(b.clone()).max(1e-6)
}

/// A variable of `shape` with entries uniform in [−1, 1).
#[allow(dead_code)] // not every test file that shares this module draws random inputs
pub fn random(rng: &mut ChaCha8Rng, shape: &[usize]) -> Var {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
    Var::from_tensor(&Tensor::from_vec(data, shape, &Device::Cpu).unwrap()).unwrap()
}

/// A fixed pseudo-random tensor shaped like `y`: summing `y` times it makes every element of `y`
/// matter to the gradient, each with its own weight.
fn projection(y: &Tensor) -> Tensor {
    let values = (0..y.elem_count())
        .map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.5)
        .collect::<Vec<_>>();
    Tensor::from_vec(values, y.shape(), &Device::Cpu).unwrap()
}

/// The sum of `y` weighted by [`projection`], backpropagated: the gradient of each of `of`.
#[allow(dead_code)] // not every test file that shares this module takes gradients
pub fn gradients(y: &Tensor, of: &[&Tensor]) -> Vec<Tensor> {
    let grads = (y * projection(y))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    of.iter().map(|t| grads.get(t).unwrap().clone()).collect()
}
