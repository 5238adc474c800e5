//! The soak run: the kiosk's frame loop flat out for a long count, reporting resident memory and
//! frame-latency percentiles per window, so a leak or a slow drift shows as a trend in a table.

use std::time::Instant;

use crate::error::Result;
use crate::kiosk::Kiosk;

/// One window of the run.
#[derive(Debug, Clone)]
pub struct SoakRow {
    /// Frames attempted so far.
    pub frames: u64,
    pub rss_mib: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub display_errors: u64,
    pub reloads: u64,
}

/// Resident set size of this process, from `/proc/self/statm`.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(1) as u64)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Shows `frames` frames (a new latent each), calling `report` every `every` frames; the model
/// file is checked for changes once per window.
pub fn soak(
    kiosk: &mut Kiosk,
    frames: u64,
    every: u64,
    mut report: impl FnMut(&SoakRow),
) -> Result<Vec<SoakRow>> {
    let every = every.max(1);
    let mut rows = Vec::new();
    let mut window: Vec<f64> = Vec::with_capacity(every as usize);
    for frame in 1..=frames {
        kiosk.advance(None, None);
        let started = Instant::now();
        kiosk.show()?;
        window.push(started.elapsed().as_secs_f64() * 1e3);
        if frame % every == 0 || frame == frames {
            window.sort_by(f64::total_cmp);
            let row = SoakRow {
                frames: frame,
                rss_mib: rss_bytes().unwrap_or(0) as f64 / (1 << 20) as f64,
                p50_ms: percentile(&window, 0.5),
                p99_ms: percentile(&window, 0.99),
                max_ms: window[window.len() - 1],
                display_errors: kiosk.display_errors,
                reloads: kiosk.reloads,
            };
            report(&row);
            rows.push(row);
            window.clear();
            kiosk.check_model(false);
        }
    }
    Ok(rows)
}
