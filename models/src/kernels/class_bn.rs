//! Conditional BatchNorm fused into the convolution before it ([`Post::BnClassAct`]):
//! `act(BN(y) · gain[n, c] + offset[n, c])`, each sample's gain and offset made from its
//! attributes' codes by a [`crate::config::Layer::ClassAffine`] layer. Unfused, the class part
//! is two broadcast ops whose outputs candle's backward fills and adds (docs/performance.md).
//!
//! [`Post::BnClassAct`]: crate::kernels::post::Post::BnClassAct

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::kernels::fused::{
    affine_act, bn_affine, bn_grads, lane_sum, ncs, stats, Activation, BatchMoments,
};
use crate::kernels::storage::{slice, zeroed};

/// `extra` split as gamma `[C]`, beta `[C]`, gain `[N·C]`, offset `[N·C]`.
fn split(extra: &[f32], n: usize, c: usize) -> Result<[&[f32]; 4]> {
    if extra.len() != 2 * c + 2 * n * c {
        bail!(
            "conditional batch norm parameters of {} values for {n} samples × {c} channels",
            extra.len()
        );
    }
    let (gamma, rest) = extra.split_at(c);
    let (beta, rest) = rest.split_at(c);
    let (gain, offset) = rest.split_at(n * c);
    Ok([gamma, beta, gain, offset])
}

/// The forward pass: output and batch moments.
pub(crate) fn forward(
    y: &[f32],
    dims: &[usize],
    extra: &[f32],
    eps: f64,
    act: Activation,
) -> Result<(Vec<f32>, BatchMoments)> {
    let (n, c, s) = ncs(dims)?;
    let [gamma, beta, gain, offset] = split(extra, n, c)?;
    let moments = stats(y, n, c, s);
    let (scale, shift) = bn_affine(gamma, beta, &moments, eps);
    // BatchNorm's map and the class part folded into one map per sample and channel.
    let scales: Vec<f32> = (0..n * c).map(|k| scale[k % c] * gain[k]).collect();
    let shifts: Vec<f32> = (0..n * c)
        .map(|k| shift[k % c] * gain[k] + offset[k])
        .collect();
    Ok((affine_act(y, c, s, &scales, &shifts, act), moments))
}

/// The backward pass from `dz`, the gradient before the activation: the convolution output's
/// gradient and `extra`'s (`dgamma ‖ dbeta ‖ dgain ‖ doffset`).
pub(crate) fn backward(
    pre: &Tensor,
    extra: &Tensor,
    dz: &Tensor,
    eps: f64,
    moments: BatchMoments,
) -> Result<(Tensor, Tensor)> {
    let (n, c, _) = ncs(pre.dims())?;
    let op = ClassGrad {
        eps,
        moments: moments.clone(),
    };
    let packed = pre.apply_op3_no_bwd(extra, &dz.contiguous()?, &op)?;
    let numel = pre.elem_count();
    let dbn = packed.narrow(0, 0, numel)?.reshape(pre.shape())?;
    let (dx, dgamma_beta) = bn_grads(pre, &extra.narrow(0, 0, c)?, &dbn, eps, Some(moments))?;
    let dclass = packed.narrow(0, numel, 2 * n * c)?;
    Ok((dx, Tensor::cat(&[&dgamma_beta, &dclass], 0)?))
}

/// `(pre, extra, dz) → [dbn…, dgain…, doffset…]`: the gradient of BatchNorm's output (`dz` ·
/// gain) and, per sample and channel, Σ dz · BN(pre) and Σ dz.
struct ClassGrad {
    eps: f64,
    moments: BatchMoments,
}

impl CustomOp3 for ClassGrad {
    fn name(&self) -> &'static str {
        "class-batch-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (pre, extra, dz) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let (n, c, s) = ncs(l1.dims())?;
        if dz.len() != pre.len() {
            bail!(
                "gradient of {} values for an output of {}",
                dz.len(),
                pre.len()
            );
        }
        let [gamma, beta, gain, _] = split(extra, n, c)?;
        let (scale, shift) = bn_affine(gamma, beta, &self.moments, self.eps);
        let mut out = zeroed(pre.len() + 2 * n * c);
        let (dbn, class) = out.split_at_mut(pre.len());
        let (dgain, doffset) = class.split_at_mut(n * c);
        // One sample per work item, each plane summed in order: deterministic on any thread count.
        dbn.par_chunks_mut(c * s)
            .zip(dgain.par_chunks_mut(c).zip(doffset.par_chunks_mut(c)))
            .enumerate()
            .for_each(|(i, (dbn, (dgain, doffset)))| {
                for (ch, dbn) in dbn.chunks_exact_mut(s).enumerate() {
                    let plane = (i * c + ch) * s;
                    let (x, d) = (&pre[plane..][..s], &dz[plane..][..s]);
                    dgain[ch] = lane_sum(d, x, |d, x| d * (x * scale[ch] + shift[ch])) as f32;
                    doffset[ch] = lane_sum(d, d, |d, _| d) as f32;
                    let g = gain[i * c + ch];
                    for (o, &d) in dbn.iter_mut().zip(d) {
                        *o = d * g;
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from(pre.len() + 2 * n * c)))
    }
}
