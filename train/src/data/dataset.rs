//! An in-memory image dataset (u8 pixels, so 20k RGB faces stay under 250 MB) and its batches.

use candle_core::{Device, Tensor};
use gan_models::DatasetInfo;

use crate::data::labels::Labels;
use crate::error::{Result, TrainError};

pub struct Dataset {
    /// `count × channels × height × width` bytes, NCHW.
    pixels: Vec<u8>,
    /// One label per image; empty for unlabelled data.
    labels: Vec<u32>,
    /// Categorical attributes per image, from a labels CSV.
    attributes: Option<Labels>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub info: DatasetInfo,
}

impl Dataset {
    pub fn new(
        pixels: Vec<u8>,
        labels: Vec<u32>,
        [channels, height, width]: [usize; 3],
        info: DatasetInfo,
    ) -> Result<Self> {
        let per = channels * height * width;
        if per == 0 || !pixels.len().is_multiple_of(per) {
            return Err(TrainError::Dataset(format!(
                "pixel buffer of {} bytes is not a whole number of {channels}×{height}×{width} images",
                pixels.len()
            )));
        }
        let ds = Self {
            pixels,
            labels,
            attributes: None,
            channels,
            height,
            width,
            info,
        };
        if !ds.labels.is_empty() && ds.labels.len() != ds.len() {
            return Err(TrainError::Dataset(format!(
                "{} labels for {} images",
                ds.labels.len(),
                ds.len()
            )));
        }
        Ok(ds)
    }

    /// Attaches one row of attributes per image; the dataset's info then names them, with their
    /// frequencies, for an attribute-conditional model to carry.
    pub fn with_attributes(mut self, attributes: Labels) -> Result<Self> {
        if attributes.len() != self.len() {
            return Err(TrainError::Dataset(format!(
                "{} attribute rows for {} images",
                attributes.len(),
                self.len()
            )));
        }
        self.info.attributes = attributes.frequencies();
        self.attributes = Some(attributes);
        Ok(self)
    }

    pub fn attributes(&self) -> Option<&Labels> {
        self.attributes.as_ref()
    }

    pub fn len(&self) -> usize {
        self.pixels.len() / (self.channels * self.height * self.width)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All images, `count × channels × height × width` bytes.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// One label per image; empty for unlabelled data.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    pub fn is_labelled(&self) -> bool {
        !self.labels.is_empty()
    }

    pub fn image_shape(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }

    /// Keeps the first `n` images (for quick runs and fixtures).
    pub fn truncate(&mut self, n: usize) {
        let per = self.channels * self.height * self.width;
        self.pixels.truncate(n * per);
        self.labels.truncate(n);
        if let Some(a) = &mut self.attributes {
            a.truncate(n);
            self.info.attributes = a.frequencies();
        }
    }

    /// The images at `indices` as flat NCHW floats in [-1, 1], the form generators produce.
    pub fn floats(&self, indices: impl IntoIterator<Item = usize>) -> Vec<f32> {
        let per = self.channels * self.height * self.width;
        indices
            .into_iter()
            .flat_map(|i| self.pixels[i * per..(i + 1) * per].iter())
            .map(|&p| p as f32 / 127.5 - 1.0)
            .collect()
    }

    /// Images `[B, C, H, W]` scaled to [-1, 1] and their conditions for the given indices: labels
    /// `[B]` (u32), or attribute classes `[B, A]`, or none.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Result<(Tensor, Option<Tensor>)> {
        let images = Tensor::from_vec(
            self.floats(indices.iter().copied()),
            (indices.len(), self.channels, self.height, self.width),
            device,
        )?;
        let labels = if self.is_labelled() {
            let l: Vec<u32> = indices.iter().map(|&i| self.labels[i]).collect();
            Some(Tensor::from_vec(l, indices.len(), device)?)
        } else if let Some(table) = &self.attributes {
            let a = table.attributes.len();
            let rows: Vec<u32> = indices
                .iter()
                .flat_map(|&i| table.values()[i * a..(i + 1) * a].iter().copied())
                .collect();
            Some(Tensor::from_vec(rows, (indices.len(), a), device)?)
        } else {
            None
        };
        Ok((images, labels))
    }
}
