//! The `--display` sinks behind one type, so the kiosk draws the same screen on each.

use std::io::Stdout;
use std::path::Path;

use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;

use crate::canvas::parse_size;
use crate::error::{EdgeError, Result};
use crate::framebuffer::{Framebuffer, Geometry, PixelFormat};
use crate::png_sink::PngSink;
use crate::terminal::TerminalSink;

pub enum Display {
    Framebuffer(Framebuffer),
    Png(PngSink),
    Terminal(TerminalSink<Stdout>),
    #[cfg(feature = "spi")]
    Spi(crate::spi::LinuxPanel),
    #[cfg(feature = "window")]
    Window(crate::window::WindowSink),
}

/// How to open a display: the `--display` spec plus the sizes it may need.
pub struct DisplayOptions<'a> {
    pub spec: &'a str,
    /// For file-backed framebuffers: `WxH`.
    pub fb_geometry: Option<&'a str>,
    pub fb_format: &'a str,
    /// Canvas size of the PNG and terminal sinks: `WxH`.
    pub size: Option<&'a str>,
}

impl Display {
    /// `fb:/dev/fb0`, `png:PATH` (`{n}` numbers frames), `term`, `spi:...` (feature `spi`), or
    /// `window` (feature `window`).
    pub fn open(o: &DisplayOptions) -> Result<Self> {
        let (kind, arg) = o.spec.split_once(':').unwrap_or((o.spec, ""));
        match kind {
            "fb" => {
                let path = Path::new(if arg.is_empty() { "/dev/fb0" } else { arg });
                Ok(Display::Framebuffer(match o.fb_geometry {
                    Some(g) => {
                        let size = parse_size(g)?;
                        let geometry = Geometry::packed(
                            size.width,
                            size.height,
                            PixelFormat::parse(o.fb_format)?,
                        );
                        Framebuffer::open_file(path, geometry)?
                    }
                    None => Framebuffer::open_device(path)?,
                }))
            }
            "png" if !arg.is_empty() => Ok(Display::Png(PngSink::new(
                arg,
                parse_size(o.size.unwrap_or("320x240"))?,
            ))),
            "term" => Ok(Display::Terminal(TerminalSink::new(
                parse_size(o.size.unwrap_or("96x64"))?,
                std::io::stdout(),
            ))),
            #[cfg(feature = "spi")]
            "spi" => Ok(Display::Spi(crate::spi::open(arg)?)),
            #[cfg(feature = "window")]
            "window" => Ok(Display::Window(crate::window::WindowSink::new(parse_size(
                o.size.unwrap_or("320x240"),
            )?))),
            _ => Err(EdgeError::Display {
                target: o.spec.into(),
                message:
                    "unknown display: use fb:/dev/fbN, png:PATH, term, spi:... (feature spi) or window \
                     (feature window)"
                        .into(),
            }),
        }
    }

    pub fn present(&mut self) -> Result<()> {
        match self {
            Display::Framebuffer(d) => d.present(),
            Display::Png(d) => d.present(),
            Display::Terminal(d) => d.present(),
            #[cfg(feature = "spi")]
            Display::Spi(d) => d.present(),
            #[cfg(feature = "window")]
            Display::Window(d) => {
                d.present();
                Ok(())
            }
        }
    }
}

impl OriginDimensions for Display {
    fn size(&self) -> Size {
        match self {
            Display::Framebuffer(d) => d.size(),
            Display::Png(d) => d.size(),
            Display::Terminal(d) => d.size(),
            #[cfg(feature = "spi")]
            Display::Spi(d) => d.size(),
            #[cfg(feature = "window")]
            Display::Window(d) => d.size(),
        }
    }
}

impl DrawTarget for Display {
    type Color = Rgb888;
    type Error = std::convert::Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Self::Error> {
        match self {
            Display::Framebuffer(d) => d.draw_iter(pixels),
            Display::Png(d) => d.draw_iter(pixels),
            Display::Terminal(d) => d.draw_iter(pixels),
            #[cfg(feature = "spi")]
            Display::Spi(d) => d.draw_iter(pixels),
            #[cfg(feature = "window")]
            Display::Window(d) => d.draw_iter(pixels),
        }
    }
}
