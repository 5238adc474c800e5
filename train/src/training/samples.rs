//! Sample grids from fixed noise, so epochs can be compared image by image.

use std::path::Path;

use candle_core::{Device, Tensor};
use gan_grid::{png_bytes, Batch};
use gan_models::Generator;

use crate::error::{Result, TrainError};
use crate::training::rng::{normal, stream, Purpose};

/// Columns of the grid; a conditional model gets one row per class.
const COLUMNS: usize = 10;
const UNCONDITIONAL_SIDE: usize = 8;

/// Fixed latents (and labels) for the grid: row r is class r, column c reuses noise c.
pub fn fixed_inputs(
    g: &Generator,
    seed: u64,
    device: &Device,
) -> Result<(Tensor, Option<Tensor>, usize)> {
    let latent = g.config.latent_dim;
    let classes = g.config.num_classes;
    let mut rng = stream(seed, Purpose::SampleGrid, 0);
    if classes == 0 {
        let n = UNCONDITIONAL_SIDE * UNCONDITIONAL_SIDE;
        let z = Tensor::from_vec(normal(&mut rng, n * latent), (n, latent), device)?;
        return Ok((z, None, UNCONDITIONAL_SIDE));
    }
    let row = normal(&mut rng, COLUMNS * latent);
    let z: Vec<f32> = (0..classes).flat_map(|_| row.iter().copied()).collect();
    let labels: Vec<u32> = (0..classes as u32).flat_map(|c| [c; COLUMNS]).collect();
    let n = labels.len();
    Ok((
        Tensor::from_vec(z, (n, latent), device)?,
        Some(Tensor::from_vec(labels, n, device)?),
        COLUMNS,
    ))
}

/// Renders the generator (inference mode) on the fixed inputs and writes a PNG atomically.
pub fn write_grid(g: &Generator, seed: u64, path: &Path, device: &Device) -> Result<()> {
    let (z, labels, columns) = fixed_inputs(g, seed, device)?;
    let images = g.forward_t(&z, labels.as_ref(), false)?;
    let (n, c, h, w) = images.dims4()?;
    let data = images.flatten_all()?.to_vec1::<f32>()?;
    write_image_grid(&data, n, [c, h, w], columns, path)
}

/// Writes `n` images (`[C, H, W]` each, values in [-1, 1]) as a PNG grid, atomically.
pub fn write_image_grid(
    data: &[f32],
    n: usize,
    [c, h, w]: [usize; 3],
    columns: usize,
    path: &Path,
) -> Result<()> {
    let grid = Batch::new(&data[..n * c * h * w], n, c, h, w)?.grid(columns, 2);
    let bytes = png_bytes(&grid)?;
    gan_models::atomic::atomic_write(path, &bytes).map_err(|source| TrainError::Write {
        path: path.to_path_buf(),
        source,
    })
}
