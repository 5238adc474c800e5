//! Generating pictures: latents per seed, labels, and the grid PNG that `generate` and the HTTP
//! endpoint return.

use gan_grid::Batch;
use image::imageops::FilterType;

use crate::ask::Ask;
use crate::error::Result;
use crate::latent::sample;
use crate::model::Generator;

/// `count` images from `seed` for `ask` (see [`Ask::conditions`]). Returns the images and the
/// condition values they were made with.
pub fn generate(
    g: &mut Generator,
    count: usize,
    ask: &Ask,
    seed: u64,
) -> Result<(Vec<f32>, Vec<i64>)> {
    let z = sample(seed, count, g.info.latent_dim);
    let conditions = ask.conditions(&g.info, count, seed);
    Ok((g.generate(&z, &conditions)?, conditions))
}

/// A PNG grid of `count` images, each scaled up `scale`× with nearest-neighbour sampling.
pub fn grid_png(
    g: &mut Generator,
    count: usize,
    ask: &Ask,
    seed: u64,
    scale: u32,
    columns: Option<usize>,
) -> Result<Vec<u8>> {
    let (images, _) = generate(g, count, ask, seed)?;
    let info = &g.info;
    let columns = columns.unwrap_or(match (info.num_classes(), ask.label) {
        (k, None) if k > 0 && count >= k => k,
        _ => (count as f64).sqrt().ceil() as usize,
    });
    let grid = Batch::new(&images, count, info.channels, info.height, info.width)?.grid(columns, 1);
    let grid = image::imageops::resize(
        &grid,
        grid.width() * scale,
        grid.height() * scale,
        FilterType::Nearest,
    );
    Ok(gan_grid::png_bytes(&grid)?)
}
