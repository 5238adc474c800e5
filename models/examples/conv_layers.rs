//! Per-layer timing of the fast convolutions (forward; backward = input and weight gradients,
//! less what the `sum_all` that seeds it and candle's storing of the input's gradient cost)
//! at the reference architectures' shapes and the shipped faces models' half-width ones
//! (`half`), batch 64, in GFLOP/s: where a training step's convolution time goes. It sets up
//! the process as `train` does (glibc keeps freed memory, candle's spinning element-wise pool
//! stays at one thread), or it would time those instead:
//!
//!   RAYON_NUM_THREADS=2 cargo run --release -p gan-models --example conv_layers [FILTER]
//!
//! FILTER keeps the layers whose name contains it (e.g. `mnist`), for profiling one at a time.

use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use gan_models::kernels::conv::{conv2d, conv_transpose2d};
use gan_models::kernels::process;

fn main() -> candle_core::Result<()> {
    process::single_candle_pool(false);
    process::keep_freed_memory();
    let dev = Device::Cpu;
    // (name, transposed, cin, cout, input side, stride, padding)
    let layers = [
        ("mnist G convT 128-64 7->14", true, 128, 64, 7, 2, 1),
        ("mnist G convT 64-1 14->28", true, 64, 1, 14, 2, 1),
        ("mnist D conv 11-64 28->14", false, 11, 64, 28, 2, 1),
        ("mnist D conv 64-128 14->7", false, 64, 128, 14, 2, 1),
        ("faces G convT 100-512 1->4", true, 100, 512, 1, 1, 0),
        ("faces G convT 512-256 4->8", true, 512, 256, 4, 2, 1),
        ("faces G convT 256-128 8->16", true, 256, 128, 8, 2, 1),
        ("faces G convT 128-64 16->32", true, 128, 64, 16, 2, 1),
        ("faces G convT 64-3 32->64", true, 64, 3, 32, 2, 1),
        ("faces D conv 3-64 64->32", false, 3, 64, 64, 2, 1),
        ("faces D conv 64-128 32->16", false, 64, 128, 32, 2, 1),
        ("faces D conv 128-256 16->8", false, 128, 256, 16, 2, 1),
        ("faces D conv 256-512 8->4", false, 256, 512, 8, 2, 1),
        ("faces D conv 512-1 4->1", false, 512, 1, 4, 1, 0),
        ("half G convT 100-256 1->4", true, 100, 256, 1, 1, 0),
        ("half G convT 256-128 4->8", true, 256, 128, 4, 2, 1),
        ("half G convT 128-64 8->16", true, 128, 64, 8, 2, 1),
        ("half G convT 64-32 16->32", true, 64, 32, 16, 2, 1),
        ("half G convT 32-3 32->64", true, 32, 3, 32, 2, 1),
        ("half D conv 3-32 64->32", false, 3, 32, 64, 2, 1),
        ("half D conv 32-64 32->16", false, 32, 64, 32, 2, 1),
        ("half D conv 64-128 16->8", false, 64, 128, 16, 2, 1),
        ("half D conv 128-256 8->4", false, 128, 256, 8, 2, 1),
        ("half D conv 257-1 4->1", false, 257, 1, 4, 1, 0),
    ];
    let filter = std::env::args().nth(1).unwrap_or_default();
    let n = 64;
    println!(
        "| layer | fwd ms | bwd ms | dx ms | dW ms | fwd GFLOP/s | bwd GFLOP/s | dx GFLOP/s | dW GFLOP/s |\n|---|---|---|---|---|---|---|---|---|"
    );
    for (name, t, cin, cout, side, s, p) in layers {
        if !name.contains(filter.as_str()) {
            continue;
        }
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., (n, cin, side, side), &dev)?)?;
        let wshape = if t {
            (cin, cout, 4, 4)
        } else {
            (cout, cin, 4, 4)
        };
        let w = Var::from_tensor(&Tensor::randn(0f32, 0.02, wshape, &dev)?)?;
        // Times one forward and backward pass; the backward computes the gradients of the
        // tensors given as variables only (x, w, or both). Alone, dx and dW each build the
        // im2col columns that they share when both run.
        let run = |x: &Tensor, w: &Tensor| -> candle_core::Result<(f64, f64, usize)> {
            let t0 = Instant::now();
            let y = if t {
                conv_transpose2d(x, w, s, p)?
            } else {
                conv2d(x, w, s, p)?
            };
            let t1 = Instant::now();
            let g = y.sum_all()?.backward()?;
            let t2 = Instant::now();
            assert!(g.get(w).is_some() || g.get(x).is_some());
            Ok((
                (t1 - t0).as_secs_f64(),
                (t2 - t1).as_secs_f64(),
                y.elem_count(),
            ))
        };
        // What `sum_all`'s own backward costs (a gradient of ones of the output's shape, filled
        // and added), timed on a variable of that shape and taken off the backward time; and
        // what candle's backprop costs to store a gradient of the input's shape (a zero
        // tensor, then the gradient added to it), taken off the input gradient's time:
        // PyTorch hands a leaf its gradient as is, and on the small-channel layers (a 64-channel
        // input, a 3-channel output) that fill and add took as long as the kernel.
        let seeding = |shape| -> candle_core::Result<f64> {
            let y = Var::zeros(shape, candle_core::DType::F32, &dev)?;
            let seed = || -> candle_core::Result<(f64, f64, usize)> {
                let t1 = Instant::now();
                let g = y.sum_all()?.backward()?;
                assert!(g.get(&y).is_some());
                Ok((0.0, t1.elapsed().as_secs_f64(), 0))
            };
            Ok(median(seed)?.1)
        };
        let seed_y = seeding(output_shape(t, (n, cout, side, s, p)))?;
        let store_x = seeding((n, cin, side, side))?;
        let (fm, bm, out) = median(|| run(&x, &w))?;
        let dx = median(|| run(&x, &w.as_detached_tensor()))?.1 - seed_y - store_x;
        let dw = median(|| run(&x.as_detached_tensor(), &w))?.1 - seed_y;
        let bm = bm - seed_y - store_x;
        // MACs: a conv's output element costs cin·k·k; a transposed conv's input element cout·k·k.
        let macs = if t {
            (n * cin * side * side * cout * 16) as f64
        } else {
            (out * cin * 16) as f64
        };
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.3} | {:.0} | {:.0} | {:.0} | {:.0} |",
            fm * 1e3,
            bm * 1e3,
            dx * 1e3,
            dw * 1e3,
            2. * macs / fm / 1e9,
            4. * macs / bm / 1e9,
            2. * macs / dx / 1e9,
            2. * macs / dw / 1e9
        );
    }
    Ok(())
}

/// Medians of the forward and backward times over 20 runs after 5 warm-up runs.
fn median(
    run: impl Fn() -> candle_core::Result<(f64, f64, usize)>,
) -> candle_core::Result<(f64, f64, usize)> {
    let (mut f, mut b, mut out) = (vec![], vec![], 0);
    for i in 0..25 {
        let (a, c, o) = run()?;
        if i >= 5 {
            f.push(a);
            b.push(c);
        }
        out = o;
    }
    f.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    Ok((f[f.len() / 2], b[b.len() / 2], out))
}

/// The output shape of the layer `(n, cout, side, stride, padding)` with a 4×4 kernel.
fn output_shape(
    transposed: bool,
    (n, cout, side, s, p): (usize, usize, usize, usize, usize),
) -> (usize, usize, usize, usize) {
    let o = if transposed {
        (side - 1) * s + 4 - 2 * p
    } else {
        (side + 2 * p - 4) / s + 1
    };
    (n, cout, o, o)
}
