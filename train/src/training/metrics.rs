//! `metrics.csv` (one row per logging interval) and `loss.png` drawn from it with plotters.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{Result, TrainError};

pub const CSV_FILE: &str = "metrics.csv";
pub const PLOT_FILE: &str = "loss.png";
const HEADER: &str = "step,epoch,loss_d,loss_g,d_x,d_g_z,images_per_s";

/// DejaVu Sans Mono (Bitstream Vera license, see assets/DejaVu-LICENSE.txt), embedded so the
/// plot has text without a system font library.
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSansMono.ttf");

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    pub step: u64,
    pub epoch: u64,
    pub loss_d: f32,
    pub loss_g: f32,
    pub d_x: f32,
    pub d_g_z: f32,
    pub images_per_s: f32,
}

/// Accumulates per-step numbers and emits their means as one row.
#[derive(Default)]
pub struct Interval {
    n: u32,
    sums: [f64; 4],
}

impl Interval {
    pub fn add(&mut self, loss_d: f32, loss_g: f32, d_x: f32, d_g_z: f32) {
        self.n += 1;
        for (s, v) in self.sums.iter_mut().zip([loss_d, loss_g, d_x, d_g_z]) {
            *s += v as f64;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn take(&mut self, step: u64, epoch: u64, images_per_s: f32) -> Row {
        let m = |i: usize| (self.sums[i] / self.n.max(1) as f64) as f32;
        let row = Row {
            step,
            epoch,
            loss_d: m(0),
            loss_g: m(1),
            d_x: m(2),
            d_g_z: m(3),
            images_per_s,
        };
        *self = Self::default();
        row
    }
}

pub struct Metrics {
    csv: PathBuf,
    plot: PathBuf,
    pub rows: Vec<Row>,
}

impl Metrics {
    /// Opens the run's metrics, keeping only rows up to `up_to_step` (a resumed run rewrites the
    /// rows that its checkpoint does not cover).
    pub fn open(run_dir: &Path, up_to_step: u64) -> Result<Self> {
        let csv = run_dir.join(CSV_FILE);
        let mut rows = Vec::new();
        if let Ok(text) = std::fs::read_to_string(&csv) {
            rows = text.lines().skip(1).filter_map(parse_row).collect();
            rows.retain(|r| r.step <= up_to_step);
        }
        let metrics = Self {
            plot: run_dir.join(PLOT_FILE),
            csv,
            rows,
        };
        metrics.flush()?;
        Ok(metrics)
    }

    pub fn push(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// Rewrites the CSV atomically (a few thousand rows at most: cheap once per epoch).
    pub fn flush(&self) -> Result<()> {
        let mut text = String::from(HEADER);
        text.push('\n');
        for r in &self.rows {
            text.push_str(&format!(
                "{},{},{:.5},{:.5},{:.5},{:.5},{:.1}\n",
                r.step, r.epoch, r.loss_d, r.loss_g, r.d_x, r.d_g_z, r.images_per_s
            ));
        }
        gan_models::atomic::atomic_write(&self.csv, text.as_bytes()).map_err(|source| {
            TrainError::Write {
                path: self.csv.clone(),
                source,
            }
        })
    }

    /// Draws both losses against the step into `loss.png`.
    pub fn plot(&self) -> Result<()> {
        static REGISTER: Once = Once::new();
        REGISTER.call_once(|| {
            // The font is embedded and known-good; a failure would only lose the plot's text.
            let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
        });
        if self.rows.len() < 2 {
            return Ok(());
        }
        let tmp = self.plot.with_extension("png.tmp.png");
        self.draw(&tmp).map_err(|e| TrainError::Write {
            path: self.plot.clone(),
            source: std::io::Error::other(e),
        })?;
        std::fs::rename(&tmp, &self.plot).map_err(|source| TrainError::Write {
            path: self.plot.clone(),
            source,
        })
    }

    fn draw(&self, path: &Path) -> std::result::Result<(), String> {
        let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let max_step = self.rows.last().map_or(1, |r| r.step).max(1);
        let max_loss = self
            .rows
            .iter()
            .flat_map(|r| [r.loss_d, r.loss_g])
            .filter(|v| v.is_finite())
            .fold(0.1f32, f32::max);
        let mut chart = ChartBuilder::on(&root)
            .caption("GAN losses", ("sans-serif", 24))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0..max_step, 0f32..max_loss * 1.05)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss")
            .draw()
            .map_err(|e| e.to_string())?;
        for (name, color, pick) in [
            ("loss D", RED, (|r: &Row| r.loss_d) as fn(&Row) -> f32),
            ("loss G", BLUE, |r: &Row| r.loss_g),
        ] {
            chart
                .draw_series(LineSeries::new(
                    self.rows.iter().map(|r| (r.step, pick(r))),
                    &color,
                ))
                .map_err(|e| e.to_string())?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    }
}

fn parse_row(line: &str) -> Option<Row> {
    let f: Vec<&str> = line.split(',').collect();
    if f.len() != 7 {
        return None;
    }
    Some(Row {
        step: f[0].parse().ok()?,
        epoch: f[1].parse().ok()?,
        loss_d: f[2].parse().ok()?,
        loss_g: f[3].parse().ok()?,
        d_x: f[4].parse().ok()?,
        d_g_z: f[5].parse().ok()?,
        images_per_s: f[6].parse().ok()?,
    })
}
