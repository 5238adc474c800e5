//! Helpers shared by the fast-path tests.

use candle_core::Tensor;

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
