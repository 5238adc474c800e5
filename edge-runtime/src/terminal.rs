//! A truecolor terminal as the display: each character cell shows two pixels with the upper
//! half block (foreground = top pixel, background = bottom), so a Pi over SSH can show the kiosk.

use std::io::Write;

use embedded_graphics::pixelcolor::{Rgb888, RgbColor};
use embedded_graphics::prelude::*;

use crate::canvas::{draws_on_canvas, Canvas};
use crate::error::{EdgeError, Result};

pub struct TerminalSink<W: Write> {
    canvas: Canvas,
    out: W,
}

impl<W: Write> TerminalSink<W> {
    /// `size` in pixels; the terminal needs width columns and height/2 rows.
    pub fn new(size: Size, out: W) -> Self {
        let height = size.height.div_ceil(2) * 2;
        Self {
            canvas: Canvas::new(Size::new(size.width, height)),
            out,
        }
    }

    /// The escape codes of one frame (cursor home, then rows of half blocks).
    pub fn render(&self) -> String {
        let w = self.canvas.size().width as usize;
        let mut s = String::from("\x1b[H");
        for row in self.canvas.pixels().chunks(2 * w) {
            let (top, bottom) = row.split_at(w);
            for (t, b) in top.iter().zip(bottom) {
                s.push_str(&format!(
                    "\x1b[38;2;{};{};{}m\x1b[48;2;{};{};{}m\u{2580}",
                    t.r(),
                    t.g(),
                    t.b(),
                    b.r(),
                    b.g(),
                    b.b()
                ));
            }
            s.push_str("\x1b[0m\r\n");
        }
        s
    }

    pub fn present(&mut self) -> Result<()> {
        let frame = self.render();
        self.out
            .write_all(frame.as_bytes())
            .and_then(|_| self.out.flush())
            .map_err(|e| EdgeError::Display {
                target: "terminal".into(),
                message: e.to_string(),
            })
    }
}

draws_on_canvas!(impl[W: Write] TerminalSink<W>);

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};

    #[test]
    fn half_blocks_carry_both_pixels() {
        let mut t = TerminalSink::new(Size::new(2, 2), Vec::new());
        Rectangle::new(Point::new(0, 0), Size::new(2, 1))
            .into_styled(PrimitiveStyle::with_fill(Rgb888::RED))
            .draw(&mut t)
            .unwrap();
        let s = t.render();
        assert_eq!(s.matches('\u{2580}').count(), 2);
        assert!(s.contains("\x1b[38;2;255;0;0m\x1b[48;2;0;0;0m"));
    }
}
