//! A PNG file as the display: every frame to its own numbered file, or the latest frame to one
//! path (replaced atomically, so a viewer never reads half a frame).

use std::path::{Path, PathBuf};

use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;

use crate::canvas::{draws_on_canvas, Canvas};
use crate::error::{EdgeError, Result};

pub struct PngSink {
    /// A path, or a pattern with `{n}` for the frame number.
    path: String,
    frame: u64,
    canvas: Canvas,
}

impl PngSink {
    pub fn new(path: &str, size: Size) -> Self {
        Self {
            path: path.to_string(),
            frame: 0,
            canvas: Canvas::new(size),
        }
    }

    fn target(&self) -> PathBuf {
        PathBuf::from(self.path.replace("{n}", &format!("{:06}", self.frame)))
    }

    pub fn present(&mut self) -> Result<()> {
        let path = self.target();
        write(&path, &self.canvas.png()?)?;
        self.frame += 1;
        Ok(())
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    gan_grid::atomic::atomic_write(path, bytes).map_err(|source| EdgeError::DisplayIo {
        target: path.display().to_string(),
        action: "cannot write PNG",
        source,
    })
}

draws_on_canvas!(impl[] PngSink);
