//! ST7789 / ILI9341 SPI panels through `mipidsi`. Frames are drawn into a back buffer and sent
//! whole on `present`, like the other sinks. The panel driver works over any embedded-hal SPI
//! bus and GPIO pins (so tests drive it against recording ones); [`open`], behind the cargo
//! feature `spi`, puts it on Linux spidev and the GPIO character device.
//!
//! Spec: `spi:/dev/spidev0.0,dc=25,rst=27[,model=st7789|ili9341][,size=240x240]`
//! `[,chip=/dev/gpiochip0][,hz=40000000][,invert=1]`.

use embedded_graphics::pixelcolor::{Rgb565, Rgb888};
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;
use embedded_hal::delay::DelayNs;
use embedded_hal::digital::OutputPin;
use embedded_hal::spi::SpiDevice;
use mipidsi::interface::SpiInterface;
use mipidsi::models::{ILI9341Rgb565, ST7789};
use mipidsi::options::ColorInversion;
use mipidsi::Builder;

use crate::canvas::{draws_on_canvas, parse_size, Canvas};
use crate::error::{EdgeError, Result};

/// Bytes the interface gathers pixels in before each SPI write.
const TRANSFER_BUFFER: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanelModel {
    St7789,
    Ili9341,
}

/// A parsed `spi:` spec: everything checked before any device is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpiSpec {
    pub device: String,
    /// GPIO line of the data/command pin.
    pub dc: u32,
    /// GPIO line of the reset pin.
    pub rst: u32,
    pub model: PanelModel,
    pub size: Size,
    pub chip: String,
    pub hz: u32,
    pub invert: bool,
}

fn err(message: impl Into<String>) -> EdgeError {
    EdgeError::Display {
        target: "spi".into(),
        message: message.into(),
    }
}

impl SpiSpec {
    pub fn parse(spec: &str) -> Result<Self> {
        let mut parts = spec.split(',');
        let device = parts
            .next()
            .filter(|d| !d.is_empty())
            .unwrap_or("/dev/spidev0.0");
        let (mut dc, mut rst, mut model, mut size, mut chip, mut hz, mut invert) = (
            None,
            None,
            PanelModel::St7789,
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
                "model" => {
                    model = match v {
                        "st7789" => PanelModel::St7789,
                        "ili9341" => PanelModel::Ili9341,
                        other => {
                            return Err(err(format!(
                                "unknown panel model `{other}` (st7789, ili9341)"
                            )))
                        }
                    }
                }
                "size" => size = v,
                "chip" => chip = v,
                "hz" => hz = num()?,
                "invert" => {
                    invert = match v {
                        "1" => true,
                        "0" => false,
                        _ => return Err(err("`invert` must be 0 or 1")),
                    }
                }
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
        Ok(Self {
            device: device.to_string(),
            dc: dc.ok_or_else(|| err("dc=GPIO is required"))?,
            rst: rst.ok_or_else(|| err("rst=GPIO is required"))?,
            model,
            size,
            chip: chip.to_string(),
            hz,
            invert,
        })
    }
}

type Interface<SPI, DC> = SpiInterface<'static, SPI, DC>;

enum Panel<SPI: SpiDevice, DC: OutputPin, RST: OutputPin> {
    St7789(mipidsi::Display<Interface<SPI, DC>, ST7789, RST>),
    Ili9341(mipidsi::Display<Interface<SPI, DC>, ILI9341Rgb565, RST>),
}

pub struct SpiPanel<SPI: SpiDevice, DC: OutputPin, RST: OutputPin> {
    panel: Panel<SPI, DC, RST>,
    canvas: Canvas,
}

impl<SPI: SpiDevice, DC: OutputPin, RST: OutputPin> SpiPanel<SPI, DC, RST> {
    /// Resets and initialises the panel `spec` describes on `spi` with pins `dc` and `rst`.
    pub fn new(
        spec: &SpiSpec,
        spi: SPI,
        dc: DC,
        rst: RST,
        delay: &mut impl DelayNs,
    ) -> Result<Self> {
        // The interface borrows its transfer buffer for the life of the panel; a kiosk opens
        // one panel per process, so the buffer is leaked rather than owned.
        let buffer: &'static mut [u8] = Box::leak(vec![0u8; TRANSFER_BUFFER].into_boxed_slice());
        let di = SpiInterface::new(spi, dc, buffer);
        let inversion = if spec.invert {
            ColorInversion::Inverted
        } else {
            ColorInversion::Normal
        };
        let (w, h) = (spec.size.width as u16, spec.size.height as u16);
        let init = |e: String| err(format!("panel init failed: {e}"));
        let panel = match spec.model {
            PanelModel::St7789 => Panel::St7789(
                Builder::new(ST7789, di)
                    .display_size(w, h)
                    .invert_colors(inversion)
                    .reset_pin(rst)
                    .init(delay)
                    .map_err(|e| init(format!("{e:?}")))?,
            ),
            PanelModel::Ili9341 => Panel::Ili9341(
                Builder::new(ILI9341Rgb565, di)
                    .display_size(w, h)
                    .invert_colors(inversion)
                    .reset_pin(rst)
                    .init(delay)
                    .map_err(|e| init(format!("{e:?}")))?,
            ),
        };
        Ok(Self {
            panel,
            canvas: Canvas::new(spec.size),
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

draws_on_canvas!(impl[SPI: SpiDevice, DC: OutputPin, RST: OutputPin] SpiPanel<SPI, DC, RST>);

/// The panel on Linux spidev and the GPIO character device.
#[cfg(feature = "spi")]
pub type LinuxPanel = SpiPanel<
    linux_embedded_hal::SpidevDevice,
    linux_embedded_hal::CdevPin,
    linux_embedded_hal::CdevPin,
>;

/// Parses `spec` (nothing is opened when it is wrong), then opens the bus and pins and
/// initialises the panel.
#[cfg(feature = "spi")]
pub fn open(spec: &str) -> Result<LinuxPanel> {
    use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
    use linux_embedded_hal::spidev::{SpiModeFlags, SpidevOptions};
    use linux_embedded_hal::{CdevPin, Delay, SpidevDevice};

    let spec = SpiSpec::parse(spec)?;
    let pin = |chip: &mut Chip, line: u32, label: &str| -> Result<CdevPin> {
        let handle = chip
            .get_line(line)
            .and_then(|l| l.request(LineRequestFlags::OUTPUT, 1, "gan-edge-runtime"))
            .map_err(|e| err(format!("GPIO {label}={line}: {e}")))?;
        CdevPin::new(handle).map_err(|e| err(format!("GPIO {label}={line}: {e}")))
    };
    let device = &spec.device;
    let mut spi = SpidevDevice::open(device).map_err(|e| err(format!("{device}: {e}")))?;
    spi.0
        .configure(
            &SpidevOptions::new()
                .max_speed_hz(spec.hz)
                .mode(SpiModeFlags::SPI_MODE_0)
                .build(),
        )
        .map_err(|e| err(format!("{device}: {e}")))?;
    let mut gpio = Chip::new(&spec.chip).map_err(|e| err(format!("{}: {e}", spec.chip)))?;
    let dc = pin(&mut gpio, spec.dc, "dc")?;
    let rst = pin(&mut gpio, spec.rst, "rst")?;
    SpiPanel::new(&spec, spi, dc, rst, &mut Delay)
}
