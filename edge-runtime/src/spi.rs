//! ST7789 / ILI9341 SPI panels through `mipidsi` (cargo feature `spi`), on Linux spidev and the
//! GPIO character device. Frames are drawn into a back buffer and sent whole on `present`, like
//! the other sinks.
//!
//! Spec: `spi:/dev/spidev0.0,dc=25,rst=27[,model=st7789|ili9341][,size=240x240]`
//! `[,chip=/dev/gpiochip0][,hz=40000000][,invert=1]`.

use embedded_graphics::pixelcolor::{Rgb565, Rgb888};
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;
use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
use linux_embedded_hal::spidev::{SpiModeFlags, SpidevOptions};
use linux_embedded_hal::{CdevPin, Delay, SpidevDevice};
use mipidsi::interface::SpiInterface;
use mipidsi::models::{ILI9341Rgb565, ST7789};
use mipidsi::options::ColorInversion;
use mipidsi::Builder;

use crate::canvas::{draws_on_canvas, parse_size, Canvas};
use crate::error::{EdgeError, Result};

type Interface = SpiInterface<'static, SpidevDevice, CdevPin>;

enum Panel {
    St7789(mipidsi::Display<Interface, ST7789, CdevPin>),
    Ili9341(mipidsi::Display<Interface, ILI9341Rgb565, CdevPin>),
}

pub struct SpiPanel {
    panel: Panel,
    canvas: Canvas,
}

fn err(message: impl Into<String>) -> EdgeError {
    EdgeError::Display {
        target: "spi".into(),
        message: message.into(),
    }
}

fn pin(chip: &mut Chip, line: u32, label: &str) -> Result<CdevPin> {
    let handle = chip
        .get_line(line)
        .and_then(|l| l.request(LineRequestFlags::OUTPUT, 1, "gan-edge-runtime"))
        .map_err(|e| err(format!("GPIO {label}={line}: {e}")))?;
    CdevPin::new(handle).map_err(|e| err(format!("GPIO {label}={line}: {e}")))
}

impl SpiPanel {
    pub fn open(spec: &str) -> Result<Self> {
        let mut parts = spec.split(',');
        let device = parts
            .next()
            .filter(|d| !d.is_empty())
            .unwrap_or("/dev/spidev0.0");
        let (mut dc, mut rst, mut model, mut size, mut chip, mut hz, mut invert) = (
            None,
            None,
            "st7789",
            "240x240",
            "/dev/gpiochip0",
            40_000_000u32,
            true,
        );
        for kv in parts {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| err(format!("`{kv}` is not key=value")))?;
            let num = || {
                v.parse::<u32>()
                    .map_err(|_| err(format!("`{k}` must be a number")))
            };
            match k {
                "dc" => dc = Some(num()?),
                "rst" => rst = Some(num()?),
                "model" => model = v,
                "size" => size = v,
                "chip" => chip = v,
                "hz" => hz = num()?,
                "invert" => invert = v == "1",
                _ => return Err(err(format!("unknown SPI option `{k}`"))),
            }
        }
        let size = parse_size(size)?;
        // mipidsi panics past the controller's 240×320 framebuffer: refuse that here.
        if size.width > 240 || size.height > 320 {
            return Err(err(format!(
                "{}x{} is larger than the controller's 240x320",
                size.width, size.height
            )));
        }
        let dc = dc.ok_or_else(|| err("dc=GPIO is required"))?;
        let mut spi = SpidevDevice::open(device).map_err(|e| err(format!("{device}: {e}")))?;
        spi.0
            .configure(
                &SpidevOptions::new()
                    .max_speed_hz(hz)
                    .mode(SpiModeFlags::SPI_MODE_0)
                    .build(),
            )
            .map_err(|e| err(format!("{device}: {e}")))?;
        let mut gpio = Chip::new(chip).map_err(|e| err(format!("{chip}: {e}")))?;
        let dc = pin(&mut gpio, dc, "dc")?;
        // The interface borrows its transfer buffer for the life of the process.
        let buffer: &'static mut [u8] = Box::leak(vec![0u8; 4096].into_boxed_slice());
        let di = SpiInterface::new(spi, dc, buffer);
        let inversion = if invert {
            ColorInversion::Inverted
        } else {
            ColorInversion::Normal
        };
        let (w, h) = (size.width as u16, size.height as u16);
        let mut delay = Delay;
        let rst = rst.map(|r| pin(&mut gpio, r, "rst")).transpose()?;
        let init = |e: String| err(format!("panel init failed: {e}"));
        let panel = match (model, rst) {
            ("st7789", Some(rst)) => Panel::St7789(
                Builder::new(ST7789, di)
                    .display_size(w, h)
                    .invert_colors(inversion)
                    .reset_pin(rst)
                    .init(&mut delay)
                    .map_err(|e| init(format!("{e:?}")))?,
            ),
            ("ili9341", Some(rst)) => Panel::Ili9341(
                Builder::new(ILI9341Rgb565, di)
                    .display_size(w, h)
                    .invert_colors(inversion)
                    .reset_pin(rst)
                    .init(&mut delay)
                    .map_err(|e| init(format!("{e:?}")))?,
            ),
            (_, None) => return Err(err("rst=GPIO is required")),
            (other, _) => {
                return Err(err(format!(
                    "unknown panel model `{other}` (st7789, ili9341)"
                )))
            }
        };
        Ok(Self {
            panel,
            canvas: Canvas::new(size),
        })
    }

    /// Sends the whole frame to the panel.
    pub fn present(&mut self) -> Result<()> {
        let area = Rectangle::new(Point::zero(), self.canvas.size());
        let colors = self.canvas.pixels().iter().map(|&c| Rgb565::from(c));
        match &mut self.panel {
            Panel::St7789(d) => d
                .fill_contiguous(&area, colors)
                .map_err(|e| err(format!("{e:?}"))),
            Panel::Ili9341(d) => d
                .fill_contiguous(&area, colors)
                .map_err(|e| err(format!("{e:?}"))),
        }
    }
}

draws_on_canvas!(impl[] SpiPanel);
