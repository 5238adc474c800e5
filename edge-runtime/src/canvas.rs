//! The in-memory screen the PNG, terminal and SPI sinks draw into before they present it, and
//! the clipping and size parsing every sink shares.

use embedded_graphics::pixelcolor::{Rgb888, RgbColor};
use embedded_graphics::prelude::*;

use crate::error::{EdgeError, Result};

/// A `size` screen of RGB pixels, row-major, black at first.
pub struct Canvas {
    size: Size,
    pixels: Vec<Rgb888>,
}

impl Canvas {
    pub fn new(size: Size) -> Self {
        Self {
            size,
            pixels: vec![Rgb888::BLACK; (size.width * size.height) as usize],
        }
    }

    /// Every pixel, row by row.
    pub fn pixels(&self) -> &[Rgb888] {
        &self.pixels
    }

    /// The screen as PNG bytes.
    pub fn png(&self) -> Result<Vec<u8>> {
        let rgb = self.pixels.iter().flat_map(|c| [c.r(), c.g(), c.b()]);
        let image = image::RgbImage::from_vec(self.size.width, self.size.height, rgb.collect())
            .expect("a canvas holds width × height pixels");
        Ok(gan_grid::png_bytes(&image)?)
    }
}

/// Implements `OriginDimensions` and `DrawTarget` for a sink that draws into its field
/// `canvas` and presents that on its own: `draws_on_canvas!(impl[] PngSink)`, or with the
/// sink's generics, `draws_on_canvas!(impl[W: Write] TerminalSink<W>)`.
macro_rules! draws_on_canvas {
    (impl[$($generics:tt)*] $sink:ty) => {
        impl<$($generics)*> OriginDimensions for $sink {
            fn size(&self) -> Size {
                self.canvas.size()
            }
        }

        impl<$($generics)*> DrawTarget for $sink {
            type Color = Rgb888;
            type Error = std::convert::Infallible;

            fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(
                &mut self,
                pixels: I,
            ) -> std::result::Result<(), Self::Error> {
                self.canvas.draw_iter(pixels)
            }
        }
    };
}
pub(crate) use draws_on_canvas;

/// The (x, y) of a point inside `size`, or None: sinks clip every pixel with this.
pub fn inside(p: Point, size: Size) -> Option<(usize, usize)> {
    (p.x >= 0 && p.y >= 0 && (p.x as u32) < size.width && (p.y as u32) < size.height)
        .then_some((p.x as usize, p.y as usize))
}

/// `WxH` with both sides in 1..=4096.
pub fn parse_size(s: &str) -> Result<Size> {
    let bad = || EdgeError::Display {
        target: s.into(),
        message: "size must be WxH, e.g. 320x240 (1..=4096)".into(),
    };
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (u32, u32) = (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
    if !(1..=4096).contains(&w) || !(1..=4096).contains(&h) {
        return Err(bad());
    }
    Ok(Size::new(w, h))
}

impl OriginDimensions for Canvas {
    fn size(&self) -> Size {
        self.size
    }
}

impl DrawTarget for Canvas {
    type Color = Rgb888;
    type Error = std::convert::Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Self::Error> {
        for Pixel(p, c) in pixels {
            if let Some((x, y)) = inside(p, self.size) {
                self.pixels[y * self.size.width as usize + x] = c;
            }
        }
        Ok(())
    }
}
