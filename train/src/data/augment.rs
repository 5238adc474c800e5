//! Differentiable augmentation (DiffAugment, Zhao et al. 2020): D only ever sees randomly
//! recoloured, shifted and cut-out images, real and generated alike, so it cannot memorise a small
//! dataset and its gradients keep pushing G towards the whole distribution. The parameters are
//! drawn here; the fast path applies them in one kernel (`gan_models::kernels::augment`), the
//! reference in candle ops, and G's gradient flows back through either.

use std::sync::Arc;

use candle_core::{DType, Result, Tensor};
use gan_models::kernels::augment::{augment, Augmentation, SampleDraw};
use gan_models::kernels::Kernels;
use rand::Rng;

/// Largest shift, as a fraction of the side (the paper's 1/8).
const TRANSLATION: f64 = 0.125;
/// Side of the cut-out square, as a fraction of the image side (the paper's 1/2).
const CUTOUT: f64 = 0.5;

/// The paper's "color,translation,cutout" policy (without `colour`: "translation,cutout") on an
/// `[N, C, H, W]` batch in [-1, 1], with fresh random parameters for every sample, run by
/// `kernels` on the CPU (candle's ops elsewhere).
pub fn diff_augment(
    x: &Tensor,
    colour: bool,
    rng: &mut impl Rng,
    kernels: Kernels,
) -> Result<Tensor> {
    let draws = draw(x.dims4()?, colour, rng);
    if kernels.fast_on(x) {
        augment(x, Arc::new(draws))
    } else {
        reference(x, &draws)
    }
}

/// Every sample's parameters: brightness, saturation and contrast for the batch (in that
/// order), then each sample's shift, then each sample's cut-out corner.
fn draw(
    (n, _, h, w): (usize, usize, usize, usize),
    colour: bool,
    rng: &mut impl Rng,
) -> Augmentation {
    let mut per_sample = |scale: f32, offset: f32| -> Vec<f32> {
        (0..n).map(|_| rng.gen::<f32>() * scale + offset).collect()
    };
    // Brightness ±0.5, saturation ×[0, 2], contrast ×[0.5, 1.5].
    let colours = colour.then(|| {
        let (b, s, k) = (
            per_sample(1.0, -0.5),
            per_sample(2.0, 0.0),
            per_sample(1.0, 0.5),
        );
        (0..n).map(|i| [b[i], s[i], k[i]]).collect::<Vec<_>>()
    });
    let shifts: Vec<_> = (0..n).map(|_| (shift(h, rng), shift(w, rng))).collect();
    let corners: Vec<_> = (0..n)
        .map(|_| (cut_start(h, rng), cut_start(w, rng)))
        .collect();
    let samples = (0..n)
        .map(|i| SampleDraw {
            colour: colours.as_ref().map(|c| c[i]),
            shift: shifts[i],
            cut_at: corners[i],
        })
        .collect();
    Augmentation {
        samples,
        cut: (cut_side(h), cut_side(w)),
    }
}

/// `draws` applied with candle's ops: the reference the kernel is tested against.
fn reference(x: &Tensor, draws: &Augmentation) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let x = if draws.samples.iter().any(|d| d.colour.is_some()) {
        color(x, draws)?
    } else {
        x.clone()
    };
    let shifts: Vec<_> = draws.samples.iter().map(|d| d.shift).collect();
    let boxes: Vec<_> = draws.samples.iter().map(|d| d.cut_at).collect();
    let index = geometry_index((n, c, h, w), &shifts, &boxes, draws.cut);
    // One gather does translation and cutout: every output element names its source element, or
    // the appended zero where it falls outside the image or inside the cut-out square. Its
    // backward pass (index_add) routes each gradient to the one pixel it came from.
    let zero = Tensor::zeros(1, DType::F32, x.device())?;
    let flat = Tensor::cat(&[&x.flatten_all()?, &zero], 0)?;
    let index = Tensor::from_vec(index, n * c * h * w, x.device())?;
    flat.index_select(&index, 0)?.reshape((n, c, h, w))
}

/// Brightness, saturation and contrast, per sample.
fn color(x: &Tensor, draws: &Augmentation) -> Result<Tensor> {
    let n = x.dim(0)?;
    let per_sample = |k: usize| {
        let v: Vec<f32> = draws
            .samples
            .iter()
            // A sample that keeps its colours: brightness 0, saturation and contrast 1.
            .map(|d| d.colour.unwrap_or([0.0, 1.0, 1.0])[k])
            .collect();
        Tensor::from_vec(v, (n, 1, 1, 1), x.device())
    };
    let x = x.broadcast_add(&per_sample(0)?)?;
    let gray = x.mean_keepdim(1)?;
    let x = x
        .broadcast_sub(&gray)?
        .broadcast_mul(&per_sample(1)?)?
        .broadcast_add(&gray)?;
    let mean = x.flatten_from(1)?.mean_keepdim(1)?.reshape((n, 1, 1, 1))?;
    x.broadcast_sub(&mean)?
        .broadcast_mul(&per_sample(2)?)?
        .broadcast_add(&mean)
}

fn shift(side: usize, rng: &mut impl Rng) -> i64 {
    let max = (side as f64 * TRANSLATION + 0.5) as i64;
    rng.gen_range(-max..=max)
}

fn cut_side(side: usize) -> usize {
    (side as f64 * CUTOUT + 0.5) as usize
}

/// Top/left edge of the cut-out square; it may hang over the border, as in the paper.
fn cut_start(side: usize, rng: &mut impl Rng) -> i64 {
    let size = cut_side(side) as i64;
    let centre = rng.gen_range(0..side as i64 + (1 - size % 2));
    centre - size / 2
}

/// Source element of every output element of a `(n, c, h, w)` batch; `n·c·h·w` (the appended
/// zero) where the shifted source is outside the image or the output pixel is cut out.
/// Output pixel (y, x) of sample i comes from input (y − dy, x − dx).
fn geometry_index(
    (n, c, h, w): (usize, usize, usize, usize),
    shifts: &[(i64, i64)],
    boxes: &[(i64, i64)],
    (cut_h, cut_w): (usize, usize),
) -> Vec<u32> {
    let zero = (n * c * h * w) as u32;
    let mut index = Vec::with_capacity(n * c * h * w);
    for i in 0..n {
        let (dy, dx) = shifts[i];
        let (top, left) = boxes[i];
        for ch in 0..c {
            for y in 0..h as i64 {
                for x in 0..w as i64 {
                    let (sy, sx) = (y - dy, x - dx);
                    let cut = (top..top + cut_h as i64).contains(&y)
                        && (left..left + cut_w as i64).contains(&x);
                    let outside = sy < 0 || sx < 0 || sy >= h as i64 || sx >= w as i64;
                    index.push(if cut || outside {
                        zero
                    } else {
                        ((((i * c + ch) * h) as i64 + sy) * w as i64 + sx) as u32
                    });
                }
            }
        }
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn shift_moves_pixels_and_cutout_zeroes_a_square() {
        // One 1×3×3 image, shifted down by one and right by zero; a 1×1 cut at (2, 2).
        let index = geometry_index((1, 1, 3, 3), &[(1, 0)], &[(2, 2)], (1, 1));
        let z = 9;
        assert_eq!(index, [z, z, z, 0, 1, 2, 3, 4, z]);
        // The second sample's indices point into its own image.
        let index = geometry_index((2, 1, 2, 2), &[(0, 0), (0, -1)], &[(9, 9), (9, 9)], (1, 1));
        assert_eq!(index, [0, 1, 2, 3, 5, 8, 7, 8]);
    }

    #[test]
    fn augments_each_sample_differently_and_passes_gradients_back() {
        let device = Device::Cpu;
        let data: Vec<f32> = (0..3 * 16 * 16)
            .map(|i| ((i * 7919) % 200) as f32 / 100.0 - 1.0)
            .collect();
        let one = Tensor::from_vec(data, (1, 3, 16, 16), &device).unwrap();
        let batch = Var::from_tensor(&Tensor::cat(&[&one, &one, &one, &one], 0).unwrap()).unwrap();
        for kernels in [Kernels::Fast, Kernels::Candle] {
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let y = diff_augment(batch.as_tensor(), true, &mut rng, kernels).unwrap();
            assert_eq!(y.dims(), [4, 3, 16, 16]);
            let rows: Vec<Vec<f32>> = (0..4)
                .map(|i| y.get(i).unwrap().flatten_all().unwrap().to_vec1().unwrap())
                .collect();
            assert!(
                rows.windows(2).all(|p| p[0] != p[1]),
                "samples augmented alike"
            );
            // The 8×8 cut-out may hang over the border, but at least its 4×4 quarter is inside.
            for row in &rows {
                assert!(row.iter().filter(|&&v| v == 0.0).count() >= 3 * 16);
            }
            let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            let g = grads
                .get(batch.as_tensor())
                .expect("a gradient for the input");
            let g: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
            assert!(g.iter().all(|v| v.is_finite()));
            assert!(g.iter().filter(|&&v| v != 0.0).count() > g.len() / 2);
        }
    }

    #[test]
    fn same_stream_same_augmentation() {
        let x = Tensor::ones((2, 3, 8, 8), DType::F32, &Device::Cpu).unwrap();
        let run = || {
            diff_augment(&x, true, &mut ChaCha8Rng::seed_from_u64(11), Kernels::Fast)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn keeping_colour_moves_and_cuts_pixels_without_changing_them() {
        // Distinct values, so every output pixel is either one of the input's or a cut zero.
        let data: Vec<f32> = (0..2 * 3 * 16 * 16)
            .map(|i| 0.5 + i as f32 * 1e-4)
            .collect();
        let x = Tensor::from_vec(data.clone(), (2, 3, 16, 16), &Device::Cpu).unwrap();
        for kernels in [Kernels::Fast, Kernels::Candle] {
            let run = |colour| -> Vec<f32> {
                diff_augment(&x, colour, &mut ChaCha8Rng::seed_from_u64(5), kernels)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            };
            let inputs: std::collections::HashSet<u32> = data.iter().map(|v| v.to_bits()).collect();
            let kept = run(false);
            assert!(kept
                .iter()
                .all(|v| *v == 0.0 || inputs.contains(&v.to_bits())));
            assert!(kept.iter().filter(|&&v| v != 0.0).count() > kept.len() / 4);
            // With colour jitter most values are new ones.
            let jittered = run(true);
            let unchanged = jittered
                .iter()
                .filter(|v| inputs.contains(&v.to_bits()))
                .count();
            assert!(unchanged < jittered.len() / 10, "{unchanged}");
        }
    }

    /// The kernel against candle's ops on the same draws: values and the input's gradient (of
    /// a weighted sum, so every output element's gradient differs), over odd sizes, both
    /// policies, a batch that mixes them, and draws whose shifts and cut-outs reach past every
    /// border.
    #[test]
    fn kernel_matches_candle_ops_forward_and_backward() {
        let device = Device::Cpu;
        for (seed, (n, c, h, w), colour) in [
            (1, (5, 3, 16, 16), true),
            (2, (4, 3, 9, 13), true),
            (3, (3, 1, 8, 8), true),
            (4, (6, 3, 12, 7), false),
        ] {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut draws = draw((n, c, h, w), colour, &mut rng);
            // Shifts past the whole side and cut-outs at and past the corners.
            draws.samples[0].shift = (h as i64, -(w as i64) + 1);
            draws.samples[1].cut_at = (-(h as i64), w as i64 - 1);
            draws.samples[2].cut_at = (h as i64 - 2, -1);
            // A sample that keeps its colours in a recoloured batch.
            draws.samples[n - 1].colour = None;
            let len = n * c * h * w;
            let values = |salt: usize| -> Vec<f32> {
                (0..len)
                    .map(|i| (((i + salt) * 7919) % 1000) as f32 / 500.0 - 1.0)
                    .collect()
            };
            let x = Var::from_vec(values(0), (n, c, h, w), &device).unwrap();
            let weights = Tensor::from_vec(values(17), (n, c, h, w), &device).unwrap();
            let run = |fast: bool| -> (Vec<f32>, Vec<f32>) {
                let y = if fast {
                    augment(x.as_tensor(), Arc::new(draws.clone())).unwrap()
                } else {
                    reference(x.as_tensor(), &draws).unwrap()
                };
                let grads = (&y * &weights)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                (flat(&y), flat(grads.get(x.as_tensor()).unwrap()))
            };
            let ((y, g), (y_ref, g_ref)) = (run(true), run(false));
            let worst = |a: &[f32], b: &[f32]| {
                a.iter()
                    .zip(b)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max)
            };
            assert!(
                worst(&y, &y_ref) < 1e-5,
                "seed {seed}: values {}",
                worst(&y, &y_ref)
            );
            assert!(
                worst(&g, &g_ref) < 1e-5,
                "seed {seed}: gradients {}",
                worst(&g, &g_ref)
            );
            // Not vacuous: something was cut and something kept.
            assert!(y_ref.contains(&0.0) && y_ref.iter().any(|&v| v != 0.0));
        }
    }
}
