//! Generated images (NCHW f32 in [-1, 1]) to pixels, tiled grids and PNG bytes. Shared by `train`
//! (sample grids) and the edge runtime (which must not pull in candle), so it has no ML dependency.
//! Also home of the crash-safe file write every crate uses.

pub mod atomic;

use std::io::Cursor;

use image::{ImageFormat, RgbImage};

#[derive(Debug, thiserror::Error)]
pub enum GridError {
    #[error("expected {expected} floats for {count}×{channels}×{height}×{width}, got {found}")]
    Length {
        expected: usize,
        found: usize,
        count: usize,
        channels: usize,
        height: usize,
        width: usize,
    },
    #[error("only 1 (gray) or 3 (RGB) channels can be shown, got {0}")]
    Channels(usize),
    #[error("PNG encoding failed: {0}")]
    Encode(#[from] image::ImageError),
}

/// A batch of images in the ONNX contract layout.
pub struct Batch<'a> {
    pub data: &'a [f32],
    pub count: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl<'a> Batch<'a> {
    pub fn new(
        data: &'a [f32],
        count: usize,
        channels: usize,
        height: usize,
        width: usize,
    ) -> Result<Self, GridError> {
        let expected = count * channels * height * width;
        if data.len() != expected {
            return Err(GridError::Length {
                expected,
                found: data.len(),
                count,
                channels,
                height,
                width,
            });
        }
        if channels != 1 && channels != 3 {
            return Err(GridError::Channels(channels));
        }
        Ok(Self {
            data,
            count,
            channels,
            height,
            width,
        })
    }

    /// RGB of pixel (x, y) of image `i`; gray images repeat their one channel.
    pub fn pixel(&self, i: usize, x: usize, y: usize) -> [u8; 3] {
        let plane = self.height * self.width;
        let base = i * self.channels * plane + y * self.width + x;
        let c = |k: usize| to_u8(self.data[base + k.min(self.channels - 1) * plane]);
        [c(0), c(1), c(2)]
    }

    /// Tiles the batch row by row, `columns` wide, with a `pad`-pixel black border.
    pub fn grid(&self, columns: usize, pad: usize) -> RgbImage {
        let columns = columns.clamp(1, self.count.max(1));
        let rows = self.count.div_ceil(columns);
        let (tw, th) = (self.width + pad, self.height + pad);
        let mut img = RgbImage::new((columns * tw + pad) as u32, (rows * th + pad) as u32);
        for i in 0..self.count {
            let (ox, oy) = (pad + (i % columns) * tw, pad + (i / columns) * th);
            for y in 0..self.height {
                for x in 0..self.width {
                    img.put_pixel(
                        (ox + x) as u32,
                        (oy + y) as u32,
                        image::Rgb(self.pixel(i, x, y)),
                    );
                }
            }
        }
        img
    }
}

/// Maps [-1, 1] to 0..=255 (the contract's `(x + 1) / 2`), clamping outliers.
pub fn to_u8(v: f32) -> u8 {
    (((v + 1.0) * 127.5).round()).clamp(0.0, 255.0) as u8
}

pub fn png_bytes(img: &RgbImage) -> Result<Vec<u8>, GridError> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png)?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_layout_and_range() {
        // Two 1×2×2 images: first all -1 (black), second all +1 (white).
        let data = [-1.0, -1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0];
        let batch = Batch::new(&data, 2, 1, 2, 2).unwrap();
        let img = batch.grid(2, 1);
        assert_eq!(img.dimensions(), (7, 4));
        assert_eq!(img.get_pixel(1, 1).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(4, 2).0, [255, 255, 255]);
        let png = png_bytes(&img).unwrap();
        let back = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(back, img);
        assert!(Batch::new(&data, 3, 1, 2, 2).is_err());
        assert!(Batch::new(&data, 1, 2, 2, 2).is_err());
        assert_eq!(to_u8(5.0), 255);
        assert_eq!(to_u8(-5.0), 0);
    }
}
