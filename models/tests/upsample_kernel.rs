//! Gradient checks: the fast nearest upsample against candle's `upsample_nearest2d`, and the
//! folded ×2 upsample + 3×3 convolution against candle's two ops, on random shapes: forward and
//! every gradient within 1e-4 relative error.

mod common;

use common::{gradients, random, rel_err};
use gan_models::kernels::upsample::{upsample2_conv3x3, upsample_nearest};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn matches_candle_on_random_shapes_and_factors() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for case in 0..24 {
        let shape = [
            rng.gen_range(1..4),
            rng.gen_range(1..9),
            rng.gen_range(1..11),
            rng.gen_range(1..11),
        ];
        let factor = rng.gen_range(1..5);
        let x = random(&mut rng, &shape);
        let run = |fast: bool| {
            let y = if fast {
                upsample_nearest(x.as_tensor(), factor).unwrap()
            } else {
                let (h, w) = (shape[2] * factor, shape[3] * factor);
                x.as_tensor().upsample_nearest2d(h, w).unwrap()
            };
            let dx = gradients(&y, &[x.as_tensor()]).remove(0);
            (y, dx)
        };
        let ((fy, fdx), (ry, rdx)) = (run(true), run(false));
        assert_eq!(fy.dims(), ry.dims(), "case {case}: {shape:?} ×{factor}");
        let errors = [rel_err(&fy, &ry), rel_err(&fdx, &rdx)];
        assert!(
            errors.iter().all(|&e| e <= 1e-4),
            "case {case}: {shape:?} ×{factor}: y, dx errors {errors:?}"
        );
    }
}

#[test]
fn a_strided_input_and_a_zero_factor() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let x = random(&mut rng, &[2, 3, 5, 4]);
    // A transposed (non-contiguous) view is upsampled as its values, not its memory order.
    let t = x.as_tensor().transpose(2, 3).unwrap();
    let fast = upsample_nearest(&t, 2).unwrap();
    let reference = t.upsample_nearest2d(8, 10).unwrap();
    assert!(rel_err(&fast, &reference) <= 1e-6);
    let e = upsample_nearest(x.as_tensor(), 0).unwrap_err().to_string();
    assert!(e.contains("at least 1"), "{e}");
}

#[test]
fn folded_upsample_conv_matches_candle_on_random_shapes() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for case in 0..16 {
        let (n, cin, cout) = (
            rng.gen_range(1..4),
            rng.gen_range(1..12),
            rng.gen_range(1..12),
        );
        let (h, w) = (rng.gen_range(1..9), rng.gen_range(1..9));
        let x = random(&mut rng, &[n, cin, h, w]);
        let k = random(&mut rng, &[cout, cin, 3, 3]);
        let (x, k) = (x.as_tensor(), k.as_tensor());
        let fast = upsample2_conv3x3(x, k).unwrap();
        let reference = x
            .upsample_nearest2d(2 * h, 2 * w)
            .unwrap()
            .conv2d(k, 1, 1, 1, 1)
            .unwrap();
        assert_eq!(fast.dims(), reference.dims(), "case {case}");
        let (f, r) = (gradients(&fast, &[x, k]), gradients(&reference, &[x, k]));
        let errors = [
            rel_err(&fast, &reference),
            rel_err(&f[0], &r[0]),
            rel_err(&f[1], &r[1]),
        ];
        assert!(
            errors.iter().all(|&e| e <= 1e-4),
            "case {case}: x {:?}, w {:?}: y, dx, dw errors {errors:?}",
            x.dims(),
            k.dims()
        );
    }
    let e = upsample2_conv3x3(
        random(&mut rng, &[1, 2, 4, 4]).as_tensor(),
        random(&mut rng, &[2, 2, 4, 4]).as_tensor(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("3×3"), "{e}");
}
