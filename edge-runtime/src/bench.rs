//! `edge-runtime bench`: latency at batch 1 and throughput at batch 64 of a loaded generator.

use std::time::Instant;

use crate::ask::Ask;
use crate::error::Result;
use crate::latent;
use crate::model::Generator;

/// Calls before timing starts (ONNX Runtime allocates and tunes on the first runs).
const WARMUP: usize = 10;

/// One batch size's timing.
pub struct Row {
    pub batch: usize,
    pub runs: usize,
    /// Median seconds per call.
    pub median_s: f64,
}

/// `runs` timed calls at each of `batches` (the median is kept).
pub fn bench(g: &mut Generator, batches: &[usize], runs: usize) -> Result<Vec<Row>> {
    let dim = g.info.latent_dim;
    let mut rows = Vec::new();
    for &batch in batches {
        let z = latent::sample(1, batch, dim);
        let labels = Ask::default().conditions(&g.info, batch, 1);
        for _ in 0..WARMUP {
            g.generate(&z, &labels)?;
        }
        let mut times = (0..runs.max(1))
            .map(|_| {
                let t = Instant::now();
                g.generate(&z, &labels).map(|_| t.elapsed().as_secs_f64())
            })
            .collect::<Result<Vec<_>>>()?;
        times.sort_by(f64::total_cmp);
        rows.push(Row {
            batch,
            runs: times.len(),
            median_s: times[times.len() / 2],
        });
    }
    Ok(rows)
}
