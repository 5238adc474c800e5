//! The fast CPU kernels of a training step, in one place: convolutions lowered to GEMM, fused
//! BatchNorm/bias + activation, nearest upsampling, DiffAugment, the minibatch-stddev channel,
//! the in-place Adam update, and the process settings they need.
//! [`Kernels`] chooses between them and candle's own ops (the reference they are tested against).

pub mod adam;
pub mod augment;
mod class_bn;
pub mod conv;
pub mod cpu;
pub mod fused;
mod gemm;
pub mod linear;
pub mod post;
pub mod process;
pub mod stddev;
pub mod storage;
mod tanh;
pub mod upsample;

/// Which code runs a CPU training step's convolutions, BatchNorm + activation and Adam update:
/// these kernels or candle's own ops. Other devices always use candle's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Kernels {
    /// candle's ops: the reference.
    Candle,
    #[default]
    Fast,
}

impl Kernels {
    /// Whether these kernels run an op on `x`: the fast path takes CPU f32 tensors, and leaves
    /// everything else to candle's ops.
    pub fn fast_on(self, x: &candle_core::Tensor) -> bool {
        self == Kernels::Fast && x.device().is_cpu() && x.dtype() == candle_core::DType::F32
    }
}
