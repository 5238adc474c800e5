//! What a fused convolution ([`crate::kernels::conv::conv_then`]) applies to its output inside
//! the same op: bias + activation, training BatchNorm (plain or with a conditional G's class
//! gains) + activation, or a conditional D's label maps + bias + activation. The convolution's
//! raw output then never becomes a tensor of the graph, for which candle's backward would fill
//! and add a gradient (docs/performance.md).
//! One `extra` tensor packs the parameters, so the fused op has three inputs (x, weight, extra).

use candle_core::{bail, Result, Tensor};
use rayon::prelude::*;

use crate::kernels::class_bn;
use crate::kernels::fused::{
    add_bias_act, bias_act_grads, bn_act, bn_grads, ncs, with_activation, ActGrad, Activation,
    BatchMoments, ChannelSum, LabelSum,
};
use crate::kernels::storage::filled;

#[derive(Debug, Clone)]
pub enum Post {
    /// `act(y + bias[c])`; extra: the bias `[C]`.
    BiasAct(Activation),
    /// Training-mode BatchNorm then `act`; extra: gamma ‖ beta `[2C]`.
    BnAct { act: Activation, eps: f64 },
    /// Training-mode BatchNorm, then each sample's class gain and offset, then `act`; extra:
    /// gamma ‖ beta `[2C]` ‖ gain ‖ offset `[N·C]` each (`crate::kernels::class_bn`).
    BnClassAct { act: Activation, eps: f64 },
    /// `act(y + maps[labels[n]] + bias[c])`; extra: the maps `[classes, C, …]` flattened, then
    /// the bias `[C]` (`Net::labelled_conv` makes the maps).
    LabelBiasAct { act: Activation, labels: Vec<u32> },
}

impl Post {
    fn act(&self) -> Activation {
        match self {
            Post::BiasAct(act)
            | Post::BnAct { act, .. }
            | Post::BnClassAct { act, .. }
            | Post::LabelBiasAct { act, .. } => *act,
        }
    }

    /// Whether the backward pass needs the convolution's raw output (BatchNorm does).
    pub(crate) fn keeps_input(&self) -> bool {
        matches!(self, Post::BnAct { .. } | Post::BnClassAct { .. })
    }

    /// The output for the convolution's output `y` (`dims`), and BatchNorm's batch moments.
    pub(crate) fn forward(
        &self,
        y: &[f32],
        dims: &[usize],
        extra: &[f32],
    ) -> Result<(Vec<f32>, Option<BatchMoments>)> {
        let (_, c, s) = ncs(dims)?;
        match self {
            Post::BiasAct(act) => Ok((add_bias_act(y, dims, extra, *act)?, None)),
            Post::BnAct { act, eps } => {
                if extra.len() != 2 * c {
                    bail!("batch norm parameters of {} for {c} channels", extra.len());
                }
                let (gamma, beta) = extra.split_at(c);
                let (out, moments) = bn_act(y, dims, gamma, beta, *eps, *act)?;
                Ok((out, Some(moments)))
            }
            Post::BnClassAct { act, eps } => {
                let (out, moments) = class_bn::forward(y, dims, extra, *eps, *act)?;
                Ok((out, Some(moments)))
            }
            Post::LabelBiasAct { act, labels } => {
                Ok((label_bias_act(y, (c, s), extra, labels, *act)?, None))
            }
        }
    }

    /// The gradients of the convolution's output and of `extra`, from the op's output `out` and
    /// its gradient `dout`; BatchNorm also takes the raw output `pre` and the forward's moments.
    pub(crate) fn backward(
        &self,
        pre: Option<&Tensor>,
        moments: Option<BatchMoments>,
        extra: &Tensor,
        out: &Tensor,
        dout: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let dpre = || out.apply_op2_no_bwd(&dout.contiguous()?, &ActGrad(self.act()));
        match self {
            Post::BiasAct(act) => bias_act_grads(out, dout, *act),
            Post::BnAct { eps, .. } => {
                let Some(pre) = pre else {
                    bail!("fused batch norm lost its input before the backward pass")
                };
                let c = extra.elem_count() / 2;
                bn_grads(pre, &extra.narrow(0, 0, c)?, &dpre()?, *eps, moments)
            }
            Post::BnClassAct { eps, .. } => {
                let (Some(pre), Some(moments)) = (pre, moments) else {
                    bail!("fused conditional batch norm lost its input before the backward pass")
                };
                class_bn::backward(pre, extra, &dpre()?, *eps, moments)
            }
            Post::LabelBiasAct { labels, .. } => {
                let dpre = dpre()?;
                let (_, c, s) = ncs(dpre.dims())?;
                let op = LabelSum {
                    labels: labels.clone(),
                    classes: (extra.elem_count() - c) / (c * s),
                };
                let dmaps = dpre.apply_op1_no_bwd(&op)?.flatten_all()?;
                let db = dpre.apply_op1_no_bwd(&ChannelSum)?;
                Ok((dpre, Tensor::cat(&[&dmaps, &db], 0)?))
            }
        }
    }
}

/// `act(y + maps[labels[n]] + bias[c])` over `[N, C, S]`, `extra` = maps ‖ bias, parallel over
/// samples.
fn label_bias_act(
    y: &[f32],
    (c, s): (usize, usize),
    extra: &[f32],
    labels: &[u32],
    act: Activation,
) -> Result<Vec<f32>> {
    let n = y.len() / (c * s);
    let maps_len = extra.len().saturating_sub(c);
    let classes = maps_len / (c * s);
    let fits = extra.len() >= c
        && maps_len == classes * c * s
        && labels.len() == n
        && labels.iter().all(|&l| (l as usize) < classes);
    if !fits {
        bail!(
            "label maps and bias of {} values and {} labels do not fit {n}×{c}×{s}",
            extra.len(),
            labels.len()
        );
    }
    let (maps, bias) = extra.split_at(maps_len);
    // SAFETY: the samples tile the output, and each sample's c planes of s are all written.
    Ok(unsafe {
        filled(y.len(), |out| {
            with_activation!(act, |f, _df| {
                out.par_chunks_mut(c * s)
                    .zip(y.par_chunks(c * s))
                    .zip(labels.par_iter())
                    .for_each(|((o, yi), &l)| {
                        let m = &maps[l as usize * c * s..][..c * s];
                        let planes = o.chunks_exact_mut(s).zip(yi.chunks_exact(s));
                        for ((o, yi), (mi, &bc)) in planes.zip(m.chunks_exact(s).zip(bias)) {
                            for ((o, &v), &w) in o.iter_mut().zip(yi).zip(mi) {
                                o.write(f(v + w + bc));
                            }
                        }
                    })
            })
        })
    })
}
