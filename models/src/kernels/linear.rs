//! A linear layer (no bias) that flattens its input and shapes its output itself:
//! `[N, …] · Wᵀ → [N, out…]` for `W` `[M, K]`, K the input's features per sample.
//!
//! With candle's ops the MNIST networks' `Flatten → Linear` (D) and `Linear → Reshape` (G) put a
//! second `[N, K]`-sized tensor in the graph per pass, for which candle's backward fills and adds
//! a gradient (docs/performance.md); this op leaves one. Work is split by rows of the output
//! (never along the sum), so results do not depend on the thread count.

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::kernels::gemm::{matmul, Mat, MatMut};
use crate::kernels::storage::{filled, slice};

/// Output rows per parallel work item.
const ROWS: usize = 16;

/// `(x, w) → x·wᵀ` shaped `[N, out…]`.
struct Forward {
    out: Vec<usize>,
}
/// `(dy, w) → dy·w` shaped as the input `.0`.
struct GradInput(Vec<usize>);
/// `(dy, x) → dyᵀ·x`, `[M, K]`.
struct GradWeight;

/// `dst[m×n] = a[m×k]·b[k×n]`, `dst` and `a` row-major, split into blocks of `ROWS` rows.
fn rows_times(m: usize, n: usize, k: usize, a: &[f32], b: Mat) -> Vec<f32> {
    assert!(a.len() == m * k && b.holds(k, n), "rows_times shapes");
    // SAFETY: the blocks tile the output and gemm writes every element of each (not
    // accumulating); `a` holds m×k and `b` k×n (checked above).
    unsafe {
        filled(m * n, |dst| {
            dst.par_chunks_mut(ROWS * n)
                .zip(a.par_chunks(ROWS * k))
                .for_each(|(dst, a)| {
                    let rows = dst.len() / n;
                    matmul(
                        rows,
                        n,
                        k,
                        MatMut::row_major(dst, n),
                        Mat::of(a, k as isize, 1),
                        b,
                    )
                })
        })
    }
}

/// `x[n×k] · w[m×k]ᵀ` (`[n, m]`), all row-major: the forward pass.
pub(crate) fn times_wt((n, m, k): (usize, usize, usize), x: &[f32], w: &[f32]) -> Vec<f32> {
    // wᵀ as a [K, M] view of the row-major [M, K] weight.
    rows_times(n, m, k, x, Mat::of(w, 1, k as isize))
}

/// `dy[n×m] · w[m×k]` (`[n, k]`), all row-major: the input gradient.
pub(crate) fn times_w((n, m, k): (usize, usize, usize), dy: &[f32], w: &[f32]) -> Vec<f32> {
    rows_times(n, k, m, dy, Mat::of(w, k as isize, 1))
}

/// `dy[n×m]ᵀ · x[n×k]` (`[m, k]`), all row-major: the weight gradient, split by weight rows.
pub(crate) fn t_times((n, m, k): (usize, usize, usize), dy: &[f32], x: &[f32]) -> Vec<f32> {
    assert!(dy.len() == n * m && x.len() == n * k, "t_times shapes");
    // SAFETY: the blocks of ROWS weight rows tile the output and gemm writes every element
    // of each; block r reads dyᵀ's rows r·ROWS.. as columns of the row-major [N, M] dy (the
    // lengths are checked above).
    unsafe {
        filled(m * k, |dst| {
            dst.par_chunks_mut(ROWS * k)
                .enumerate()
                .for_each(|(b, dst)| {
                    let rows = dst.len() / k;
                    let dyt = Mat::of(&dy[b * ROWS..], 1, m as isize);
                    matmul(
                        rows,
                        k,
                        n,
                        MatMut::row_major(dst, k),
                        dyt,
                        Mat::of(x, k as isize, 1),
                    )
                })
        })
    }
}

/// Samples and features per sample of a `[N, …]` layout.
fn samples(l: &Layout) -> Result<(usize, usize)> {
    match l.dims() {
        [n, rest @ ..] if !rest.is_empty() => Ok((*n, rest.iter().product())),
        dims => bail!("linear expects [N, …], got {dims:?}"),
    }
}

impl CustomOp2 for Forward {
    fn name(&self) -> &'static str {
        "fast-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, k) = samples(l1)?;
        let (&[m, wk], m_out) = (l2.dims(), self.out.iter().product::<usize>()) else {
            bail!("linear weight must be [M, K], got {:?}", l2.dims())
        };
        if wk != k || m_out != m {
            bail!(
                "linear weight {:?} does not fit input {:?} and output {:?}",
                l2.dims(),
                l1.dims(),
                self.out
            );
        }
        let y = times_wt((n, m, k), slice(s1, l1)?, slice(s2, l2)?);
        let mut dims = vec![n];
        dims.extend(&self.out);
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let dx = if x.track_op() {
            Some(dy.apply_op2_no_bwd(w, &GradInput(x.dims().to_vec()))?)
        } else {
            None
        };
        let dw = if w.track_op() {
            Some(dy.apply_op2_no_bwd(x, &GradWeight)?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

impl CustomOp2 for GradInput {
    fn name(&self) -> &'static str {
        "fast-linear-grad-input"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, m) = samples(l1)?;
        let &[_, k] = l2.dims() else {
            bail!("linear weight must be [M, K], got {:?}", l2.dims())
        };
        let dx = times_w((n, m, k), slice(s1, l1)?, slice(s2, l2)?);
        Ok((CpuStorage::F32(dx), Shape::from(self.0.clone())))
    }
}

impl CustomOp2 for GradWeight {
    fn name(&self) -> &'static str {
        "fast-linear-grad-weight"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let ((n, m), (_, k)) = (samples(l1)?, samples(l2)?);
        let dw = t_times((n, m, k), slice(s1, l1)?, slice(s2, l2)?);
        Ok((CpuStorage::F32(dw), Shape::from((m, k))))
    }
}

/// `x` (`[N, …]`, flattened per sample) times `wᵀ` (`w` `[M, K]`), shaped `[N, out…]` with
/// `out` multiplying to M.
pub fn linear(x: &Tensor, w: &Tensor, out: &[usize]) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2(&w.contiguous()?, Forward { out: out.to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Values and gradients of `Σ linear(x, w)·r` against candle's matmul, for shapes whose row
    /// counts are and are not multiples of the block.
    #[test]
    fn matches_candle_matmul_and_its_gradients() {
        let dev = Device::Cpu;
        for (n, dims, m, out) in [
            (5, vec![3, 2, 2], 7, vec![7]),
            (40, vec![6], 35, vec![5, 7]),
            (17, vec![4, 3, 3], 1, vec![1]),
        ] {
            let k: usize = dims.iter().product();
            let mut xd = vec![n];
            xd.extend(&dims);
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, xd, &dev).unwrap()).unwrap();
            let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap()).unwrap();
            let mut yd = vec![n];
            yd.extend(&out);
            let r = Tensor::randn(0f32, 1.0, yd.clone(), &dev).unwrap();

            let fast = linear(&x, &w, &out).unwrap();
            let reference = x
                .flatten_from(1)
                .unwrap()
                .matmul(&w.t().unwrap())
                .unwrap()
                .reshape(yd)
                .unwrap();
            let close = |a: &Tensor, b: &Tensor, what: &str| {
                let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
                let scale = b.abs().unwrap().max_all().unwrap();
                let (d, s) = (
                    diff.to_scalar::<f32>().unwrap(),
                    scale.to_scalar::<f32>().unwrap(),
                );
                assert!(
                    d <= 1e-5 * s.max(1.0),
                    "{what} ({n}, {dims:?}, {m}): {d} vs {s}"
                );
            };
            close(&fast, &reference, "output");
            let gf = (fast * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gr = (reference * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for (v, what) in [
                (x.as_tensor(), "input grad"),
                (w.as_tensor(), "weight grad"),
            ] {
                close(gf.get(v).unwrap(), gr.get(v).unwrap(), what);
            }
        }
    }
}
