//! The f32 data behind candle's CPU storage, for the kernels that work on it directly.

use std::mem::MaybeUninit;

use candle_core::{bail, CpuStorage, Layout, Result};
use rayon::prelude::*;

/// A vector of `len` f32 that `fill` writes in full: large outputs skip the zeroing that
/// `vec![0.0; len]` does (measurable in a profile: docs/performance.md).
///
/// # Safety
/// `fill` must initialise every element of the slice it gets.
pub(crate) unsafe fn filled(len: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    fill(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: the caller's `fill` initialised all `len` elements.
    unsafe { v.set_len(len) };
    v
}

/// `len` zeros, written in parallel chunks: `vec![0.0; len]` zeroes on the calling thread alone
/// while the other threads of a training step wait (a visible share of its serial part:
/// docs/performance.md).
pub(crate) fn zeroed(len: usize) -> Vec<f32> {
    // SAFETY: the chunks tile the slice and every element of each is written.
    unsafe {
        filled(len, |v| {
            v.par_chunks_mut(1 << 15)
                .for_each(|c| c.fill(MaybeUninit::new(0.0)))
        })
    }
}

/// `out` zero-filled, as the values it now holds: for an output that is added into where the
/// rest of it is written.
pub(crate) fn zero_init(out: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    out.fill(MaybeUninit::new(0.0));
    // SAFETY: every element was just written, and MaybeUninit<f32> has f32's layout.
    unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<f32>(), out.len()) }
}

/// A written buffer seen as one to write again (a reused scratch buffer handed to a function
/// that writes its output in full).
///
/// # Safety
/// Nothing written through the view may be uninitialised (`MaybeUninit::write` of an f32 only).
pub(crate) unsafe fn rewritable(v: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: same layout; the caller writes only initialised values.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<MaybeUninit<f32>>(), v.len()) }
}

/// Where a contiguous tensor's elements lie in its storage.
fn contiguous_range(l: &Layout) -> Result<std::ops::Range<usize>> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(a..b),
        None => bail!("fast CPU ops need contiguous tensors"),
    }
}

/// The f32 data of a contiguous CPU tensor (the fast ops make their inputs contiguous first).
pub fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    match s {
        CpuStorage::F32(v) => Ok(&v[contiguous_range(l)?]),
        _ => bail!("fast CPU ops support f32 only"),
    }
}

/// [`slice`], writable: the storage of an in-place op.
pub fn slice_mut<'a>(s: &'a mut CpuStorage, l: &Layout) -> Result<&'a mut [f32]> {
    match s {
        CpuStorage::F32(v) => Ok(&mut v[contiguous_range(l)?]),
        _ => bail!("fast CPU ops support f32 only"),
    }
}
