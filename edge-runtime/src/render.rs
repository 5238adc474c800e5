//! Generating pictures: latents per seed, labels, and the grid PNG that `generate` and the HTTP
//! endpoint return.

use gan_grid::Batch;
use image::imageops::FilterType;

use crate::error::Result;
use crate::latent::sample;
use crate::model::Generator;

/// `count` images from `seed`: all of class `label`, or (conditional models) classes cycling
/// 0, 1, 2, … so a grid shows every class. Returns the images and their labels.
pub fn generate(
    g: &mut Generator,
    count: usize,
    label: Option<usize>,
    seed: u64,
) -> Result<(Vec<f32>, Vec<i64>)> {
    let z = sample(seed, count, g.info.latent_dim);
    let classes = g.info.num_classes();
    let labels: Vec<i64> = match (classes, label) {
        (0, _) => vec![],
        (_, Some(l)) => vec![l as i64; count],
        (k, None) => (0..count).map(|i| (i % k) as i64).collect(),
    };
    Ok((g.generate(&z, &labels)?, labels))
}

/// A PNG grid of `count` images, each scaled up `scale`× with nearest-neighbour sampling.
pub fn grid_png(
    g: &mut Generator,
    count: usize,
    label: Option<usize>,
    seed: u64,
    scale: u32,
) -> Result<Vec<u8>> {
    let (images, _) = generate(g, count, label, seed)?;
    let info = &g.info;
    let columns = match (info.num_classes(), label) {
        (k, None) if k > 0 && count >= k => k,
        _ => (count as f64).sqrt().ceil() as usize,
    };
    let grid = Batch::new(&images, count, info.channels, info.height, info.width)?.grid(columns, 1);
    let grid = image::imageops::resize(
        &grid,
        grid.width() * scale,
        grid.height() * scale,
        FilterType::Nearest,
    );
    Ok(gan_grid::png_bytes(&grid)?)
}
