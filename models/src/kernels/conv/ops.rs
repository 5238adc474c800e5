//! The convolutions as candle custom ops: forward, input gradient and weight gradient.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Device, Layout, Result, Shape, Tensor};

use super::plan::{Plan, Source};
use super::{ConvKind, ConvSpec};
use crate::kernels::fused::{moments_tensor, Moments};
use crate::kernels::post::Post;
use crate::kernels::storage::slice;

/// im2col columns computed by one pass and reused by a later one: a Conv2d's forward pass makes
/// those of its input, which its weight gradient needs; a ConvTranspose2d's input gradient makes
/// those of the output gradient, which its weight gradient needs too. (They are the same
/// numbers; recomputing them was a visible share of a step: docs/performance.md.)
type Columns = Arc<Mutex<Option<Arc<Vec<f32>>>>>;

/// The convolution itself: `(input, weight) → output`.
struct Forward {
    spec: ConvSpec,
    patches: Columns,
}
/// `(grad_output, weight) → grad_input`, for the input of shape `.1`; a transposed one leaves
/// its columns in `.2`.
struct GradInput(ConvSpec, [usize; 4], Columns);
/// `(input, grad_output) → grad_weight`, for the weight of shape `.1`, reusing the columns in
/// `.2` when an earlier pass left them.
struct GradWeight(ConvSpec, [usize; 4], Columns);

impl Forward {
    /// The convolution of the contiguous input `(s1, l1)` with the weight `(s2, l2)`.
    fn run(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(Vec<f32>, Shape)> {
        let plan = Plan::new(self.spec, l1.dims(), l2.dims())?;
        let (x, w) = (slice(s1, l1)?, slice(s2, l2)?);
        Ok(match self.spec.kind {
            ConvKind::Conv if plan.dense() => (plan.dense_matrix(x, w), plan.matrix_shape()),
            ConvKind::Transposed if plan.dense() => (plan.dense_image(x, w), plan.image_shape()),
            ConvKind::Conv if plan.streams() => {
                (plan.im2col_gemm(Source::Images(x), w), plan.matrix_shape())
            }
            ConvKind::Conv => {
                let patches = plan.patches(x);
                let y = plan.im2col_gemm(Source::Batch(&patches), w);
                *self.patches.lock().expect("not poisoned") = Some(Arc::new(patches));
                (y, plan.matrix_shape())
            }
            ConvKind::Transposed => (plan.gemm_col2im(x, w), plan.image_shape()),
        })
    }

    /// The gradients of the input and the weight from the output's gradient `dy`; inputs that
    /// lead to no variable (real images, detached fakes) get none.
    fn grads(
        &self,
        x: &Tensor,
        w: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let dims = |t: &Tensor| -> Result<[usize; 4]> {
            let (a, b, c, d) = t.dims4()?;
            Ok([a, b, c, d])
        };
        let columns = match self.spec.kind {
            ConvKind::Conv => Arc::clone(&self.patches),
            ConvKind::Transposed => Columns::default(),
        };
        let dx = if x.track_op() {
            let op = GradInput(self.spec, dims(x)?, Arc::clone(&columns));
            Some(dy.apply_op2_no_bwd(w, &op)?)
        } else {
            None
        };
        let dw = if w.track_op() {
            let op = GradWeight(self.spec, dims(w)?, columns);
            Some(x.apply_op2_no_bwd(&dy, &op)?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

impl CustomOp2 for Forward {
    fn name(&self) -> &'static str {
        "fast-conv"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, shape) = self.run(s1, l1, s2, l2)?;
        Ok((CpuStorage::F32(y), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        self.grads(x, w, dy)
    }
}

/// A convolution and what follows it ([`Post`]) as one op: `(input, weight, extra) → output`.
struct Fused {
    conv: Forward,
    post: Post,
    /// The convolution's raw output, kept for the backward pass when `post` needs it.
    pre: Mutex<Option<Tensor>>,
    moments: Moments,
}

impl CustomOp3 for Fused {
    fn name(&self) -> &'static str {
        "fast-conv-fused"
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
        let (y, shape) = self.conv.run(s1, l1, s2, l2)?;
        let (out, moments) = self.post.forward(&y, shape.dims(), slice(s3, l3)?)?;
        if self.post.keeps_input() {
            let pre = Tensor::from_vec(y, shape.clone(), &Device::Cpu)?;
            *self.pre.lock().expect("not poisoned") = Some(pre);
        }
        *self.moments.lock().expect("not poisoned") = moments;
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        extra: &Tensor,
        out: &Tensor,
        dout: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let pre = self.pre.lock().expect("not poisoned").take();
        let moments = self.moments.lock().expect("not poisoned").clone();
        let (dy, dextra) = self
            .post
            .backward(pre.as_ref(), moments, extra, out, dout)?;
        let (dx, dw) = self.conv.grads(x, w, &dy)?;
        Ok((dx, dw, extra.track_op().then_some(dextra)))
    }
}

impl CustomOp2 for GradInput {
    fn name(&self) -> &'static str {
        "fast-conv-grad-input"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let plan = Plan::new(self.0, &self.1, l2.dims())?;
        let (dy, w) = (slice(s1, l1)?, slice(s2, l2)?);
        Ok(match self.0.kind {
            ConvKind::Conv if plan.dense() => {
                (CpuStorage::F32(plan.dense_image(dy, w)), plan.image_shape())
            }
            ConvKind::Transposed if plan.dense() => (
                CpuStorage::F32(plan.dense_matrix(dy, w)),
                plan.matrix_shape(),
            ),
            ConvKind::Conv => (CpuStorage::F32(plan.gemm_col2im(dy, w)), plan.image_shape()),
            ConvKind::Transposed if plan.streams() => (
                CpuStorage::F32(plan.im2col_gemm(Source::Images(dy), w)),
                plan.matrix_shape(),
            ),
            ConvKind::Transposed => {
                let patches = plan.patches(dy);
                let dx = plan.im2col_gemm(Source::Batch(&patches), w);
                *self.2.lock().expect("not poisoned") = Some(Arc::new(patches));
                (CpuStorage::F32(dx), plan.matrix_shape())
            }
        })
    }
}

impl CustomOp2 for GradWeight {
    fn name(&self) -> &'static str {
        "fast-conv-grad-weight"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let plan = Plan::new(self.0, l1.dims(), &self.1)?;
        let (x, dy) = (slice(s1, l1)?, slice(s2, l2)?);
        let cached = self.2.lock().expect("not poisoned").take();
        let dw = match (self.0.kind, cached) {
            (ConvKind::Conv, _) if plan.dense() => plan.dense_weight_grad(dy, x),
            (ConvKind::Transposed, _) if plan.dense() => plan.dense_weight_grad(x, dy),
            (ConvKind::Conv, _) if plan.streams() => plan.weight_grad_streamed(dy, x),
            (ConvKind::Transposed, _) if plan.streams() => plan.weight_grad_streamed(x, dy),
            (ConvKind::Conv, Some(patches)) => plan.weight_grad(dy, &patches),
            (ConvKind::Conv, None) => plan.weight_grad(dy, &plan.patches(x)),
            (ConvKind::Transposed, Some(patches)) => plan.weight_grad(x, &patches),
            (ConvKind::Transposed, None) => plan.weight_grad(x, &plan.patches(dy)),
        };
        Ok((CpuStorage::F32(dw), Shape::from(self.1.to_vec())))
    }
}

fn forward_op(kind: ConvKind, stride: usize, padding: usize) -> Forward {
    Forward {
        spec: ConvSpec {
            kind,
            stride,
            padding,
        },
        patches: Columns::default(),
    }
}

fn apply(kind: ConvKind, x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2(&w.contiguous()?, forward_op(kind, stride, padding))
}

/// Conv2d (no bias, dilation 1, groups 1) on CPU f32 tensors.
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    apply(ConvKind::Conv, x, w, stride, padding)
}

/// ConvTranspose2d (no bias, no output padding, dilation 1) on CPU f32 tensors.
pub fn conv_transpose2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    apply(ConvKind::Transposed, x, w, stride, padding)
}

/// The convolution `kind` of `x` with `w`, then `post` with its parameters packed in `extra`,
/// as one op. Returns the output and, for BatchNorm, the batch `[2, C]` mean and biased
/// variance (for the running statistics).
pub fn conv_then(
    kind: ConvKind,
    (x, w): (&Tensor, &Tensor),
    (stride, padding): (usize, usize),
    post: Post,
    extra: &Tensor,
) -> Result<(Tensor, Option<Tensor>)> {
    let moments = Moments::default();
    let op = Fused {
        conv: forward_op(kind, stride, padding),
        post,
        pre: Mutex::default(),
        moments: Arc::clone(&moments),
    };
    let y = x
        .contiguous()?
        .apply_op3(&w.contiguous()?, &extra.contiguous()?, op)?;
    let moments = moments.lock().expect("not poisoned").clone();
    Ok((y, moments.map(moments_tensor).transpose()?))
}
