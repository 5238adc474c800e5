//! Sample grids from fixed noise, so epochs can be compared image by image.

use std::path::Path;

use candle_core::{Device, Tensor};
use gan_grid::{png_bytes, Batch};
use gan_models::labels::LabelPrior;
use gan_models::Generator;

use crate::error::{Result, TrainError};
use crate::training::rng::{normal, stream, Purpose};

/// Columns of the grid; a class-conditional model gets one row per class.
const COLUMNS: usize = 10;
/// Rows and columns of an unconditional or attribute-conditional grid.
const SIDE: usize = 8;

/// Fixed latents (and conditions) for the grid: row r is class r, or (attributes) one fixed
/// combination drawn from `prior`; column c reuses noise c, so a column shows one latent under
/// every row's conditions.
pub fn fixed_inputs(
    g: &Generator,
    prior: &LabelPrior,
    seed: u64,
    device: &Device,
) -> Result<(Tensor, Option<Tensor>, usize)> {
    let latent = g.config.latent_dim;
    let mut rng = stream(seed, Purpose::SampleGrid, 0);
    let (rows, columns, labels) = match prior {
        LabelPrior::None => {
            let n = SIDE * SIDE;
            let z = Tensor::from_vec(normal(&mut rng, n * latent), (n, latent), device)?;
            return Ok((z, None, SIDE));
        }
        LabelPrior::Uniform(classes) => {
            let labels: Vec<u32> = (0..*classes as u32).flat_map(|c| [c; COLUMNS]).collect();
            let n = labels.len();
            (*classes, COLUMNS, Tensor::from_vec(labels, n, device)?)
        }
        LabelPrior::Attributes(attributes) => {
            let per_row = prior
                .draw(SIDE, &mut rng, device)?
                .expect("an attribute prior draws attributes");
            let a = attributes.len();
            let rows = per_row.to_vec2::<u32>()?;
            let labels: Vec<u32> = rows
                .iter()
                .flat_map(|r| std::iter::repeat_n(r.iter().copied(), SIDE).flatten())
                .collect();
            (
                SIDE,
                SIDE,
                Tensor::from_vec(labels, (SIDE * SIDE, a), device)?,
            )
        }
    };
    let row = normal(&mut rng, columns * latent);
    let z: Vec<f32> = (0..rows).flat_map(|_| row.iter().copied()).collect();
    Ok((
        Tensor::from_vec(z, (rows * columns, latent), device)?,
        Some(labels),
        columns,
    ))
}

/// Renders the generator (inference mode) on the fixed inputs and writes a PNG atomically.
pub fn write_grid(
    g: &Generator,
    prior: &LabelPrior,
    seed: u64,
    path: &Path,
    device: &Device,
) -> Result<()> {
    let (z, labels, columns) = fixed_inputs(g, prior, seed, device)?;
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
