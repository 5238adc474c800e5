//! tanh for f32 as a branch-free rational function, so that the fused activation loops
//! vectorise: glibc's `tanhf` is a scalar call per element (through `expm1f`), a visible share
//! of a faces step where G's output is 786k values per batch (docs/performance.md).
//!
//! The 13/6-degree odd/even interpolant is Eigen's `generic_fast_tanh_float`, the same one
//! ONNX Runtime's MLAS evaluates, so the trained G and its exported graph compute the same
//! function. It is within 5e-7 of tanh and never past ±1 (the test measures it).

/// Where the interpolant reaches ±1 in f32 (newer Eigen's clamp; at Eigen's older 9 it
/// overshoots to 1 + 1 ulp).
const CLAMP: f32 = 7.905_311;
/// Numerator coefficients, x¹ … x¹³ (odd).
const ALPHA: [f32; 7] = [
    4.893_524_6e-3,
    6.372_619_5e-4,
    1.485_722_4e-5,
    5.122_297_3e-8,
    -8.604_672e-11,
    2.000_188e-13,
    -2.760_768_4e-16,
];
/// Denominator coefficients, x⁰ … x⁶ (even).
const BETA: [f32; 4] = [4.893_525e-3, 2.268_434_7e-3, 1.185_347_1e-4, 1.198_258_4e-6];

#[inline(always)]
pub(crate) fn tanh(v: f32) -> f32 {
    let x = v.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let p = ALPHA.iter().rev().fold(0.0, |acc, &a| acc * x2 + a) * x;
    let q = BETA.iter().rev().fold(0.0, |acc, &b| acc * x2 + b);
    p / q
}

#[cfg(test)]
mod tests {
    use super::tanh;

    /// Against f64's tanh on a dense grid over [-12, 12], the edges and the special values:
    /// within 5e-7 absolute (up to 8 ulp just below ±1), relative 1e-6 near zero, odd, and
    /// never past ±1.
    #[test]
    fn matches_tanh_within_5e_7() {
        let mut worst = (0f64, 0f64);
        for i in -1_200_000..=1_200_000 {
            let x = i as f32 * 1e-5;
            let (t, exact) = (tanh(x), (x as f64).tanh());
            let abs = (t as f64 - exact).abs();
            worst.0 = worst.0.max(abs);
            if x.abs() > 1e-3 {
                worst.1 = worst.1.max(abs / exact.abs());
            }
            assert!(t.abs() <= 1.0 && tanh(-x) == -t, "{x}");
        }
        assert!(worst.0 < 5e-7 && worst.1 < 1e-6, "{worst:?}");
        assert_eq!(tanh(0.0), 0.0);
        assert_eq!(tanh(1e30), 1.0);
        assert_eq!(tanh(-1e30), -1.0);
        assert_eq!(tanh(f32::INFINITY), 1.0);
    }
}
