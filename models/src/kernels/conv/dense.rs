//! A window that covers the whole image once (no padding, one output position: a conditional
//! D's last 4×4 → 1×1 layer, a G's first 1×1 → 4×4 one) makes im2col and col2im the identity:
//! the convolution is a linear layer, so its three lowerings are single GEMMs over the batch
//! (`kernels::linear`) with no columns built and no thin per-group GEMMs.

use super::plan::Plan;
use crate::kernels::linear::{t_times, times_w, times_wt};

impl Plan {
    /// Whether the k×k window covers the `ih × iw` image exactly once.
    pub(super) fn dense(&self) -> bool {
        let g = self.g;
        g.p == 0 && g.k == g.ih && g.k == g.iw && g.oh == 1 && g.ow == 1
    }

    fn dims(&self) -> (usize, usize, usize) {
        (self.n, self.m, self.g.rows())
    }

    /// matrix = W · image per sample: `[N, m]` from `[N, rows]`.
    pub(super) fn dense_matrix(&self, image: &[f32], w: &[f32]) -> Vec<f32> {
        times_wt(self.dims(), &image[..self.n * self.g.image()], w)
    }

    /// image = Wᵀ · matrix per sample: `[N, rows]` from `[N, m]`.
    pub(super) fn dense_image(&self, matrix: &[f32], w: &[f32]) -> Vec<f32> {
        times_w(self.dims(), &matrix[..self.n * self.m], w)
    }

    /// dW = Σₙ matrix[n] · image[n]ᵀ, `[m, rows]`.
    pub(super) fn dense_weight_grad(&self, matrix: &[f32], image: &[f32]) -> Vec<f32> {
        let (n, m, rows) = self.dims();
        t_times(self.dims(), &matrix[..n * m], &image[..n * rows])
    }
}
