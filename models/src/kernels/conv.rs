//! Fast CPU Conv2d / ConvTranspose2d (NCHW, f32) as candle custom ops with backward passes.
//!
//! candle 0.11's CPU `conv_transpose2d` and conv backward run far below its GEMM rate
//! (docs/performance.md); lowering every pass onto one GEMM via im2col/col2im runs them at GEMM
//! speed.
//! No crate offers this for candle, so it is written here, on the `gemm` crate candle itself uses.
//!
//! Both convolutions are the same three kernels over an "image side" `[N, c, ih, iw]` seen through
//! k×k windows, a "matrix side" `[N, m, oh, ow]` (one column per window) and the weight as an
//! `[m, c·k·k]` matrix:
//! - `im2col_gemm`: matrix = W · im2col(image)   (conv forward, transposed-conv input grad)
//! - `gemm_col2im`: image = col2im(Wᵀ · matrix)  (conv input grad, transposed-conv forward)
//! - `weight_grad`: dW = Σₙ matrix · im2col(image)ᵀ      (both weight grads)
//!
//! A window covering the whole image makes im2col the identity; those layers skip it (`dense.rs`).
//! Layers with few positions per sample build im2col for the whole batch once, and a Conv2d
//! hands its columns from the forward to the backward pass; layers with many (16×16 and up)
//! build them per sample group inside the thread that multiplies them, so the 13–67 MB batch
//! columns never go out to memory and back. At stride 2 the columns come from the image's 2×2
//! phase planes (`Geometry::phased`), so they are contiguous copies.
//!
//! Work is split across rayon threads by sample, row or column block, and a weight gradient's
//! reduction only into fixed chunks of samples added in order; every split depends on the
//! shapes alone, never on the thread count (gemm's own blocking follows the GEMM's shape, so a
//! per-thread split would change the rounding), so results are the same on any machine and
//! resume stays bit-exact.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvKind {
    /// Conv2d: the input is the image side, weight `[Cout, Cin, k, k]`.
    Conv,
    /// ConvTranspose2d: the output is the image side, weight `[Cin, Cout, k, k]`.
    Transposed,
}

#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    pub kind: ConvKind,
    pub stride: usize,
    pub padding: usize,
}

/// Defines the method `$name` as `$any` compiled with AVX2 where the CPU has it (chosen at run
/// time): the crate's baseline x86-64 build leaves these loops scalar or SSE2, and LLVM
/// vectorises them (stride-2 loops as shuffles) once AVX2 is enabled. `$any` must be
/// `#[inline(always)]` so that it is compiled into the AVX2 function.
macro_rules! with_avx2 {
    ($(#[$doc:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)*) => $any:ident) => {
        $(#[$doc])*
        pub(super) fn $name(&self $(, $arg: $ty)*) {
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                #[target_feature(enable = "avx2")]
                unsafe fn avx2(g: &Geometry $(, $arg: $ty)*) {
                    g.$any($($arg),*)
                }
                // SAFETY: the CPU has AVX2.
                return unsafe { avx2(self $(, $arg)*) };
            }
            self.$any($($arg),*)
        }
    };
}

// Declared after `with_avx2!` so that the macro is in scope inside them.
mod dense;
mod geometry;
mod ops;
mod plan;
mod transpose;

pub use ops::{conv2d, conv_then, conv_transpose2d};
