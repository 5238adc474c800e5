//! The one GEMM every convolution and linear pass lowers to, through slice-backed matrix views.

use ::gemm::Parallelism;

/// A matrix operand for `gemm`: element (i, j) at `i·rs + j·cs` of the slice it borrows.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub(crate) data: &'a [f32],
    pub(crate) rs: isize,
    pub(crate) cs: isize,
}

impl<'a> Mat<'a> {
    /// `data` seen with row stride `rs` and column stride `cs`. `T` is `f32` or
    /// `MaybeUninit<f32>` whose elements the caller has written.
    pub(crate) fn of<T>(data: &'a [T], rs: isize, cs: isize) -> Self {
        const { assert!(std::mem::size_of::<T>() == 4 && std::mem::align_of::<T>() == 4) };
        // SAFETY: T is f32 or MaybeUninit<f32> (same size and alignment, checked above), and the
        // callers pass only elements they have initialised.
        let data = unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<f32>(), data.len()) };
        Self { data, rs, cs }
    }

    /// Whether an `rows × cols` matrix at these strides lies inside the slice.
    pub(crate) fn holds(&self, rows: usize, cols: usize) -> bool {
        reach(rows, cols, self.rs, self.cs) <= self.data.len()
    }
}

/// A GEMM output: element (i, j) at `i·rs + j·cs` of the slice it borrows.
pub(crate) struct MatMut<'a> {
    pub(crate) data: &'a mut [f32],
    pub(crate) rs: isize,
    pub(crate) cs: isize,
}

impl<'a> MatMut<'a> {
    /// `data` seen with row stride `rs` and column stride `cs`; `T` is `f32` or
    /// `MaybeUninit<f32>` (gemm writes every element of the product when not accumulating).
    pub(crate) fn of<T>(data: &'a mut [T], rs: isize, cs: isize) -> Self {
        const { assert!(std::mem::size_of::<T>() == 4 && std::mem::align_of::<T>() == 4) };
        // SAFETY: as in `Mat::of`; the view is only written through gemm, which stores whole
        // f32 values, so no uninitialised value is ever read.
        let data =
            unsafe { std::slice::from_raw_parts_mut(data.as_mut_ptr().cast::<f32>(), data.len()) };
        Self { data, rs, cs }
    }

    pub(crate) fn row_major<T>(data: &'a mut [T], rs: usize) -> Self {
        Self::of(data, rs as isize, 1)
    }

    pub(crate) fn holds(&self, rows: usize, cols: usize) -> bool {
        reach(rows, cols, self.rs, self.cs) <= self.data.len()
    }
}

/// Elements a `rows × cols` matrix at non-negative strides `rs`, `cs` spans from its first.
pub(crate) fn reach(rows: usize, cols: usize, rs: isize, cs: isize) -> usize {
    debug_assert!(rs >= 0 && cs >= 0, "gemm views use non-negative strides");
    if rows == 0 || cols == 0 {
        return 0;
    }
    (rows - 1) * rs as usize + (cols - 1) * cs as usize + 1
}

/// `dst[m×n] = a[m×k] · b[k×n]` on one thread (callers parallelise around it).
///
/// # Safety
/// When `accumulate`, `dst` must be initialised; the views' extents are checked in debug builds
/// (a release build trusts the caller's shapes, as gemm reads and writes through raw pointers).
pub(crate) unsafe fn matmul(m: usize, n: usize, k: usize, dst: MatMut, a: Mat, b: Mat) {
    // SAFETY: not accumulating; the caller's extents, as this function's.
    unsafe { matmul_add(m, n, k, dst, a, b, false) }
}

/// [`matmul`], adding the product to `dst` when `accumulate`.
///
/// # Safety
/// As for [`matmul`].
pub(crate) unsafe fn matmul_add(
    m: usize,
    n: usize,
    k: usize,
    dst: MatMut,
    a: Mat,
    b: Mat,
    accumulate: bool,
) {
    debug_assert!(dst.holds(m, n), "gemm output {m}×{n} outside its slice");
    debug_assert!(a.holds(m, k), "gemm lhs {m}×{k} outside its slice");
    debug_assert!(b.holds(k, n), "gemm rhs {k}×{n} outside its slice");
    // SAFETY: each view spans its matrix (checked above in debug builds, the caller's contract
    // in release) and borrows its slice for the call, so nothing else writes `dst` meanwhile.
    unsafe {
        ::gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            dst.cs,
            dst.rs,
            accumulate,
            a.data.as_ptr(),
            a.cs,
            a.rs,
            b.data.as_ptr(),
            b.cs,
            b.rs,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}
