//! The ST7789 and ILI9341 paths of the SPI panel, without a panel: the driver runs against a
//! bus that records every byte with the level of the data/command pin, and a reset pin from
//! embedded-hal-mock that expects exactly the reset pulse. Checked: the reset and init
//! sequence, the address window, and the pixel bytes equal to the drawn frame in RGB565
//! big-endian; `invert`, a size other than the default, and bad specs.

use std::cell::RefCell;
use std::convert::Infallible;
use std::rc::Rc;

use embedded_graphics::mono_font::ascii::FONT_6X10;
use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::pixelcolor::{Rgb565, Rgb888};
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use embedded_graphics::text::Text;
use embedded_hal::digital::{ErrorType as PinErrorType, OutputPin};
use embedded_hal::spi::{ErrorType as SpiErrorType, Operation, SpiDevice};
use embedded_hal_mock::eh1::delay::NoopDelay;
use embedded_hal_mock::eh1::digital::{Mock as PinMock, State, Transaction as PinTransaction};
use gan_edge_runtime::canvas::Canvas;
use gan_edge_runtime::spi::{PanelModel, SpiPanel, SpiSpec};

/// Every SPI write with the data/command pin's level at the time (`true`: data).
#[derive(Default)]
struct Wire {
    dc_high: bool,
    writes: Vec<(bool, Vec<u8>)>,
}

#[derive(Clone, Default)]
struct Recorder(Rc<RefCell<Wire>>);

struct Bus(Recorder);
struct DcPin(Recorder);

impl SpiErrorType for Bus {
    type Error = Infallible;
}

impl SpiDevice for Bus {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), Infallible> {
        let mut wire = self.0 .0.borrow_mut();
        for op in operations {
            match op {
                Operation::Write(bytes) => {
                    let dc = wire.dc_high;
                    wire.writes.push((dc, bytes.to_vec()));
                }
                other => panic!("the panel driver only writes, got {other:?}"),
            }
        }
        Ok(())
    }
}

impl PinErrorType for DcPin {
    type Error = Infallible;
}

impl OutputPin for DcPin {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.0 .0.borrow_mut().dc_high = false;
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Infallible> {
        self.0 .0.borrow_mut().dc_high = true;
        Ok(())
    }
}

/// A command byte (sent with DC low) and the data bytes after it (DC high).
type Command = (u8, Vec<u8>);

/// The recorded bytes as commands.
fn commands(rec: &Recorder) -> Vec<Command> {
    let mut out: Vec<Command> = Vec::new();
    for (data, bytes) in &rec.0.borrow().writes {
        if *data {
            out.last_mut()
                .expect("data before any command")
                .1
                .extend(bytes);
        } else {
            assert_eq!(bytes.len(), 1, "a command is one byte");
            out.push((bytes[0], Vec::new()));
        }
    }
    out
}

/// A frame with text, colours and edges: what the kiosk screen is made of.
fn draw(target: &mut impl DrawTarget<Color = Rgb888, Error = Infallible>) {
    let size = target.bounding_box().size;
    Rectangle::new(Point::new(0, 0), size)
        .into_styled(PrimitiveStyle::with_stroke(Rgb888::new(255, 128, 0), 1))
        .draw(target)
        .unwrap();
    Rectangle::new(Point::new(10, 20), Size::new(30, 40))
        .into_styled(PrimitiveStyle::with_fill(Rgb888::new(12, 200, 99)))
        .draw(target)
        .unwrap();
    Text::new(
        "digit 7",
        Point::new(5, 12),
        MonoTextStyle::new(&FONT_6X10, Rgb888::WHITE),
    )
    .draw(target)
    .unwrap();
}

/// The panel's wire format: RGB565 (embedded-graphics' rounding), big-endian.
fn rgb565_be(c: Rgb888) -> [u8; 2] {
    Rgb565::from(c).into_storage().to_be_bytes()
}

/// Opens a panel for `spec` on a recorder, draws a frame and presents it.
fn run(spec: &str) -> (SpiSpec, Vec<Command>, Vec<u8>) {
    let spec = SpiSpec::parse(spec).unwrap();
    let rec = Recorder::default();
    let rst_expected = [
        PinTransaction::set(State::Low),
        PinTransaction::set(State::High),
    ];
    let mut rst = PinMock::new(&rst_expected);
    let mut panel = SpiPanel::new(
        &spec,
        Bus(rec.clone()),
        DcPin(rec.clone()),
        rst.clone(),
        &mut NoopDelay::new(),
    )
    .unwrap();
    // The reset pulse, and nothing else on that pin.
    rst.done();
    let init = commands(&rec);
    rec.0.borrow_mut().writes.clear();
    draw(&mut panel);
    panel.present().unwrap();
    let mut expected = Canvas::new(spec.size);
    draw(&mut expected);
    let pixels: Vec<u8> = expected
        .pixels()
        .iter()
        .flat_map(|&c| rgb565_be(c))
        .collect();
    let frame = commands(&rec);
    let w = spec.size.width as u16 - 1;
    let h = spec.size.height as u16 - 1;
    let codes: Vec<u8> = frame.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, [0x2a, 0x2b, 0x2c], "address window, then the pixels");
    assert_eq!(frame[0].1, [[0, 0], w.to_be_bytes()].concat(), "columns");
    assert_eq!(frame[1].1, [[0, 0], h.to_be_bytes()].concat(), "rows");
    let sent = &frame[2].1;
    assert_eq!(sent.len(), pixels.len());
    if let Some(i) = sent.iter().zip(&pixels).position(|(a, b)| a != b) {
        panic!(
            "pixel byte {i} differs: sent {}, drawn {}",
            sent[i], pixels[i]
        );
    }
    (spec, init, pixels)
}

fn codes(init: &[Command]) -> Vec<u8> {
    init.iter().map(|(c, _)| *c).collect()
}

#[test]
fn st7789_resets_initialises_and_sends_the_frame() {
    let (spec, init, pixels) = run("/dev/spidev0.0,dc=25,rst=27");
    assert_eq!(spec.model, PanelModel::St7789);
    assert_eq!(spec.size, Size::new(240, 240));
    // Sleep out, address mode, inversion on (the default), 16-bit pixels, normal mode, on.
    assert_eq!(codes(&init), [0x11, 0x36, 0x21, 0x3a, 0x13, 0x29]);
    assert_eq!(init[3].1, [0x55], "COLMOD: 16 bits per pixel");
    assert_eq!(pixels.len(), 240 * 240 * 2);
}

#[test]
fn invert_0_turns_inversion_off() {
    let (_, init, _) = run("/dev/spidev0.0,dc=25,rst=27,invert=0");
    assert_eq!(codes(&init), [0x11, 0x36, 0x20, 0x3a, 0x13, 0x29]);
}

#[test]
fn ili9341_at_another_size() {
    let (spec, init, pixels) = run("/dev/spidev0.0,dc=24,rst=23,model=ili9341,size=200x300");
    assert_eq!(
        (spec.model, spec.dc, spec.rst),
        (PanelModel::Ili9341, 24, 23)
    );
    let codes = codes(&init);
    // Address mode, frame inversion control, inversion, 16-bit pixels, normal mode, sleep out,
    // display on.
    assert_eq!(codes, [0x36, 0xb4, 0x21, 0x3a, 0x13, 0x11, 0x29]);
    assert_eq!(init[3].1, [0x55], "COLMOD: 16 bits per pixel");
    assert_eq!(pixels.len(), 200 * 300 * 2);
}

#[test]
fn bad_specs_are_refused_before_anything_opens() {
    for (spec, why) in [
        ("/dev/spidev0.0,rst=27", "dc=GPIO is required"),
        ("/dev/spidev0.0,dc=25", "rst=GPIO is required"),
        (
            "/dev/spidev0.0,dc=25,rst=27,model=ssd1306",
            "unknown panel model `ssd1306`",
        ),
        (
            "/dev/spidev0.0,dc=25,rst=27,size=320x480",
            "larger than the controller's 240x320",
        ),
        ("/dev/spidev0.0,dc=25,rst=27,size=big", "size must be WxH"),
        ("/dev/spidev0.0,dc=x,rst=27", "`dc` must be a number"),
        (
            "/dev/spidev0.0,dc=25,rst=27,invert=yes",
            "`invert` must be 0 or 1",
        ),
        (
            "/dev/spidev0.0,dc=25,rst=27,speed=9",
            "unknown SPI option `speed`",
        ),
        ("/dev/spidev0.0,dc", "`dc` is not key=value"),
    ] {
        let e = SpiSpec::parse(spec).unwrap_err().to_string();
        assert!(e.contains(why), "{spec}: {e}");
    }
}

/// With the Linux driver built in, a bad spec fails before the device is opened: the error is
/// the spec's, not the missing device's.
#[cfg(feature = "spi")]
#[test]
fn the_linux_panel_checks_the_spec_before_opening_the_device() {
    let missing = "/nonexistent/spidev9.9";
    let e = gan_edge_runtime::spi::open(&format!("{missing},dc=25"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("rst=GPIO is required") && !e.contains("No such file"),
        "{e}"
    );
    let e = gan_edge_runtime::spi::open(&format!("{missing},dc=25,rst=27"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains(missing), "{e}");
}
