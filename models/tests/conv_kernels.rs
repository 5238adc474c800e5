//! Gradient checks: the fast CPU convolutions against candle's reference ops, on random shapes,
//! strides and paddings: forward and both gradients within 1e-4 relative error.

mod common;

use common::{gradients, random, rel_err};
use gan_models::kernels::conv;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Runs `f` with the fast op and with candle's, returns max relative error of y, dx, dw.
fn check(
    transposed: bool,
    x_shape: [usize; 4],
    w_shape: [usize; 4],
    stride: usize,
    pad: usize,
    seed: u64,
) -> [f32; 3] {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = random(&mut rng, &x_shape);
    let w = random(&mut rng, &w_shape);
    let run = |fast: bool| {
        let y = match (transposed, fast) {
            (false, true) => conv::conv2d(x.as_tensor(), w.as_tensor(), stride, pad),
            (false, false) => x.as_tensor().conv2d(w.as_tensor(), pad, stride, 1, 1),
            (true, true) => conv::conv_transpose2d(x.as_tensor(), w.as_tensor(), stride, pad),
            (true, false) => x
                .as_tensor()
                .conv_transpose2d(w.as_tensor(), pad, 0, stride, 1),
        }
        .unwrap();
        let [dx, dw] = <[_; 2]>::try_from(gradients(&y, &[x.as_tensor(), w.as_tensor()])).unwrap();
        (y, dx, dw)
    };
    let (fy, fdx, fdw) = run(true);
    let (ry, rdx, rdw) = run(false);
    [rel_err(&fy, &ry), rel_err(&fdx, &rdx), rel_err(&fdw, &rdw)]
}

#[test]
fn matches_candle_on_random_shapes() {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    for case in 0..48u64 {
        let transposed = case % 2 == 1;
        // Up to 20 samples, so that layers with few positions batch several per GEMM.
        let n = rng.gen_range(1..21);
        let cin = rng.gen_range(1..9);
        let cout = rng.gen_range(1..9);
        let k = rng.gen_range(1..5);
        let stride = rng.gen_range(1..4);
        let pad = rng.gen_range(0..k);
        // candle's own conv2d backward breaks when the stride leaves a remainder (its input
        // gradient comes out one pixel short), so the reference cases avoid remainders.
        let fit = |v: usize| {
            if transposed {
                v
            } else {
                v - (v + 2 * pad - k) % stride
            }
        };
        let h = fit(rng.gen_range(k..k + 9));
        let w = fit(rng.gen_range(k..k + 9));
        let w_shape = if transposed {
            [cin, cout, k, k]
        } else {
            [cout, cin, k, k]
        };
        let errs = check(transposed, [n, cin, h, w], w_shape, stride, pad, case);
        assert!(
            errs.iter().all(|&e| e <= 1e-4),
            "case {case} transposed={transposed} x=[{n},{cin},{h},{w}] w={w_shape:?} s={stride} p={pad}: errors {errs:?}"
        );
    }
}

#[test]
fn matches_candle_on_the_reference_layers() {
    // The layer shapes of both reference architectures (k4 s2 p1 and k4 s1 p0), small batches;
    // 9 samples where few positions put several samples (and a last, partial group) per GEMM.
    let cases = [
        (true, [2, 128, 7, 7], [128, 64, 4, 4], 2, 1),
        (true, [2, 64, 14, 14], [64, 1, 4, 4], 2, 1),
        (false, [2, 11, 28, 28], [64, 11, 4, 4], 2, 1),
        (false, [2, 64, 14, 14], [128, 64, 4, 4], 2, 1),
        (true, [9, 100, 1, 1], [100, 64, 4, 4], 1, 0),
        (true, [9, 32, 4, 4], [32, 16, 4, 4], 2, 1),
        (false, [9, 16, 8, 8], [32, 16, 4, 4], 2, 1),
        (false, [9, 64, 4, 4], [1, 64, 4, 4], 1, 0),
        // Few matrix-side channels, many rows.
        (false, [4, 64, 16, 16], [8, 64, 4, 4], 2, 1),
        (true, [4, 8, 8, 8], [8, 64, 4, 4], 2, 1),
        // 7×7 and 14×14 positions, 64 samples: groups sized so that their GEMM's width fills
        // whole vector registers (16 samples of 49 positions with AVX-512, 8 with AVX2).
        (false, [64, 2, 14, 14], [8, 2, 4, 4], 2, 1),
        (true, [64, 8, 7, 7], [8, 2, 4, 4], 2, 1),
        (true, [64, 4, 14, 14], [4, 1, 4, 4], 2, 1),
        // 16×16 positions and more: columns built per sample group, weight gradient summed
        // in chunks (9 samples: a partial last chunk).
        (false, [9, 8, 32, 32], [4, 8, 4, 4], 2, 1),
        (true, [9, 4, 16, 16], [4, 8, 4, 4], 2, 1),
        (false, [5, 1, 32, 32], [16, 1, 4, 4], 2, 1),
        // A window covering the whole image (one GEMM over the batch), at either stride, with
        // more samples than one work block.
        (false, [37, 6, 3, 3], [5, 6, 3, 3], 1, 0),
        (false, [37, 64, 4, 4], [1, 64, 4, 4], 2, 0),
        (true, [37, 7, 1, 1], [7, 5, 3, 3], 2, 0),
        (true, [19, 100, 1, 1], [100, 3, 4, 4], 1, 0),
    ];
    for (i, (t, x, w, s, p)) in cases.into_iter().enumerate() {
        let errs = check(t, x, w, s, p, i as u64);
        assert!(errs.iter().all(|&e| e <= 1e-4), "{x:?} {w:?}: {errs:?}");
    }
}

/// Where the stride leaves a remainder, the last row and column of a Conv2d's input lie in no
/// window (nor in a phase plane): their gradient is exactly zero, and the whole is the
/// transposed convolution of the output's gradient with output padding (candle's own conv2d
/// backward gets this shape wrong, so it cannot be the reference here).
#[test]
fn input_gradient_where_the_stride_leaves_a_remainder() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    // (input, weight): k2 and k4 windows at stride 2, no padding, one row and column left.
    let cases = [([3, 2, 7, 7], [4, 2, 2, 2]), ([2, 3, 9, 11], [5, 3, 4, 4])];
    for (x_shape, w_shape) in cases {
        let x = random(&mut rng, &x_shape);
        let w = random(&mut rng, &w_shape);
        let y = conv::conv2d(x.as_tensor(), w.as_tensor(), 2, 0).unwrap();
        let dy = random(&mut rng, y.dims()).as_detached_tensor();
        let grads = (&y * &dy).unwrap().sum_all().unwrap().backward().unwrap();
        let dx = grads.get(x.as_tensor()).unwrap();
        let reference = dy.conv_transpose2d(w.as_tensor(), 0, 1, 2, 1).unwrap();
        let err = rel_err(dx, &reference);
        assert!(err <= 1e-4, "{x_shape:?} {w_shape:?}: error {err}");
        let (h, wd) = (x_shape[2], x_shape[3]);
        let edges = [
            dx.narrow(2, h - 1, 1).unwrap(),
            dx.narrow(3, wd - 1, 1).unwrap(),
        ];
        for edge in edges {
            let sum = edge
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert_eq!(sum, 0.0, "{x_shape:?}: a pixel in no window got a gradient");
        }
    }
}

#[test]
fn no_gradient_for_inputs_that_need_none() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = random(&mut rng, &[1, 2, 6, 6]).as_tensor().detach();
    let w = random(&mut rng, &[3, 2, 4, 4]);
    let y = conv::conv2d(&x, w.as_tensor(), 2, 1).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(&x).is_none());
    assert!(grads.get(w.as_tensor()).is_some());
}

/// The output and both gradients come out bit-identical on 1, 2 and 3 threads, on the shapes
/// whose work is split differently (a reduction split into fixed sample chunks, columns built
/// per sample, samples grouped per GEMM): resume is bit-exact only if this holds.
#[test]
fn results_do_not_depend_on_the_thread_count() {
    let cases = [
        (true, [20, 64, 14, 14], [64, 1, 4, 4], 2, 1),
        (false, [20, 11, 28, 28], [64, 11, 4, 4], 2, 1),
        (true, [9, 16, 32, 32], [16, 3, 4, 4], 2, 1),
        (false, [9, 3, 64, 64], [16, 3, 4, 4], 2, 1),
        (false, [37, 64, 4, 4], [1, 64, 4, 4], 2, 0),
        (true, [37, 100, 1, 1], [100, 32, 4, 4], 1, 0),
    ];
    for (i, (transposed, x_shape, w_shape, stride, pad)) in cases.into_iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(i as u64);
        let x = random(&mut rng, &x_shape);
        let w = random(&mut rng, &w_shape);
        let bits = |threads: usize| -> Vec<Vec<u32>> {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let y = if transposed {
                    conv::conv_transpose2d(x.as_tensor(), w.as_tensor(), stride, pad)
                } else {
                    conv::conv2d(x.as_tensor(), w.as_tensor(), stride, pad)
                }
                .unwrap();
                let grads = gradients(&y, &[x.as_tensor(), w.as_tensor()]);
                std::iter::once(y)
                    .chain(grads)
                    .map(|t| {
                        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                        v.into_iter().map(f32::to_bits).collect()
                    })
                    .collect()
            })
        };
        let one = bits(1);
        for threads in [2, 3] {
            assert!(
                bits(threads) == one,
                "{x_shape:?} {w_shape:?}: {threads} threads differ from one"
            );
        }
    }
}
