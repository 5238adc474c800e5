//! Adam's update of one CPU tensor in three in-place passes, instead of a dozen allocating
//! candle ops per tensor; the optimizer itself (state, checkpoints) lives in `gan-train`.

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Result, Tensor};

use rayon::prelude::*;

use crate::kernels::storage::{slice, slice_mut};

/// Elements per parallel work item: the update is element-wise, so the split cannot change a
/// result, and it keeps a training step's serial part (the caller's thread alone) short.
const CHUNK: usize = 1 << 14;

/// One step's constants: learning rate, betas, their bias corrections at this step, epsilon.
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub bc1: f64,
    pub bc2: f64,
    pub eps: f64,
}

/// `m`, `v` and then `param` updated in place from the gradient `g` (all CPU f32, contiguous
/// moments and parameter).
pub fn update_in_place(
    param: &Tensor,
    m: &Tensor,
    v: &Tensor,
    g: &Tensor,
    s: &AdamStep,
) -> Result<()> {
    let g = g.contiguous()?;
    m.inplace_op2(
        &g,
        &Moment {
            beta: s.beta1,
            square: false,
        },
    )?;
    v.inplace_op2(
        &g,
        &Moment {
            beta: s.beta2,
            square: true,
        },
    )?;
    param.inplace_op3(
        m,
        v,
        &Update {
            lr: s.lr,
            bc1: s.bc1,
            bc2: s.bc2,
            eps: s.eps,
        },
    )
}

/// `avg ← β·avg + (1 − β)·x` in place (CPU f32, contiguous `avg`): Adam's first-moment pass,
/// which is also the exponential moving average of G's weights.
pub fn moving_average_in_place(avg: &Tensor, x: &Tensor, beta: f64) -> Result<()> {
    avg.inplace_op2(
        &x.contiguous()?,
        &Moment {
            beta,
            square: false,
        },
    )
}

/// `m ← β·m + (1 − β)·g` (or `g²` for the second moment), in place.
struct Moment {
    beta: f64,
    square: bool,
}

/// `p ← p − lr · (m / bc1) / (√(v / bc2) + ε)`, in place.
struct Update {
    lr: f64,
    bc1: f64,
    bc2: f64,
    eps: f64,
}

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "adam-moment"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let (m, g) = (slice_mut(s1, l1)?, slice(s2, l2)?);
        let (keep, take) = (self.beta as f32, (1.0 - self.beta) as f32);
        let square = self.square;
        m.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .for_each(|(m, g)| {
                for (m, &g) in m.iter_mut().zip(g) {
                    let g = if square { g * g } else { g };
                    *m = *m * keep + g * take;
                }
            });
        Ok(())
    }
}

impl InplaceOp3 for Update {
    fn name(&self) -> &'static str {
        "adam-update"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<()> {
        let p = slice_mut(s1, l1)?;
        let (m, v) = (slice(s2, l2)?, slice(s3, l3)?);
        let (lr, bc1, bc2, eps) = (
            self.lr as f32,
            self.bc1 as f32,
            self.bc2 as f32,
            self.eps as f32,
        );
        p.par_chunks_mut(CHUNK)
            .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
            .for_each(|(p, (m, v))| {
                for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
                    *p -= (m / bc1) / ((v / bc2).sqrt() + eps) * lr;
                }
            });
        Ok(())
    }
}
