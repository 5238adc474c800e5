//! The kiosk screen, drawn with embedded-graphics primitives and text, identical on every sink:
//! a caption line, the generated image scaled up by a whole factor (crisp pixels) and centred,
//! and a status line.

use embedded_graphics::mono_font::ascii::{FONT_10X20, FONT_6X10};
use embedded_graphics::mono_font::{MonoFont, MonoTextStyle};
use embedded_graphics::pixelcolor::{Rgb888, RgbColor};
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;
use embedded_graphics::text::{Alignment, Baseline, Text, TextStyleBuilder};

/// One generated image in contract layout `[C, H, W]`, values in [-1, 1].
pub struct Picture<'a> {
    pub data: &'a [f32],
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl Picture<'_> {
    fn color(&self, x: usize, y: usize) -> Rgb888 {
        let plane = self.height * self.width;
        let c = |k: usize| {
            gan_grid::to_u8(self.data[k.min(self.channels - 1) * plane + y * self.width + x])
        };
        Rgb888::new(c(0), c(1), c(2))
    }
}

const CAPTION: Rgb888 = Rgb888::new(0xff, 0xd0, 0x60);
const STATUS: Rgb888 = Rgb888::new(0x90, 0x90, 0x90);

/// Where the picture lands for a display of `size`: its top-left corner and scale factor.
pub fn layout(size: Size, picture: (usize, usize), font: &MonoFont) -> (Point, u32) {
    let line = font.character_size.height;
    let area = Size::new(size.width, size.height.saturating_sub(2 * line));
    let scale = (area.width / picture.1 as u32)
        .min(area.height / picture.0 as u32)
        .max(1);
    let (w, h) = (picture.1 as u32 * scale, picture.0 as u32 * scale);
    let x = (size.width.saturating_sub(w) / 2) as i32;
    let y = line as i32 + (area.height.saturating_sub(h) / 2) as i32;
    (Point::new(x, y), scale)
}

fn font_for(size: Size) -> &'static MonoFont<'static> {
    if size.height >= 200 && size.width >= 200 {
        &FONT_10X20
    } else {
        &FONT_6X10
    }
}

/// Clears the display and draws caption, picture and status.
pub fn draw<D>(
    target: &mut D,
    picture: &Picture,
    caption: &str,
    status: &str,
) -> Result<(), D::Error>
where
    D: DrawTarget<Color = Rgb888> + OriginDimensions,
{
    let size = target.size();
    let font = font_for(size);
    target.clear(Rgb888::BLACK)?;
    let (origin, scale) = layout(size, (picture.height, picture.width), font);
    let area = Rectangle::new(
        origin,
        Size::new(picture.width as u32 * scale, picture.height as u32 * scale),
    );
    let s = scale as usize;
    let colors = (0..picture.height * s)
        .flat_map(|y| (0..picture.width * s).map(move |x| (x / s, y / s)))
        .map(|(x, y)| picture.color(x, y));
    target.fill_contiguous(&area, colors)?;
    let centered = TextStyleBuilder::new()
        .alignment(Alignment::Center)
        .baseline(Baseline::Top)
        .build();
    let mid = size.width as i32 / 2;
    Text::with_text_style(
        caption,
        Point::new(mid, 0),
        MonoTextStyle::new(font, CAPTION),
        centered,
    )
    .draw(target)?;
    let bottom = size.height as i32 - font.character_size.height as i32;
    Text::with_text_style(
        status,
        Point::new(mid, bottom),
        MonoTextStyle::new(font, STATUS),
        centered,
    )
    .draw(target)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_graphics::mock_display::MockDisplay;

    #[test]
    fn picture_is_scaled_crisply_and_centred() {
        // A 2×2 picture, left column white, right column black, on a 64×64 display.
        let data = [1.0, -1.0, 1.0, -1.0];
        let pic = Picture {
            data: &data,
            channels: 1,
            height: 2,
            width: 2,
        };
        let mut display: MockDisplay<Rgb888> = MockDisplay::new();
        display.set_allow_overdraw(true);
        draw(&mut display, &pic, "", "").unwrap();
        let (origin, scale) = layout(Size::new(64, 64), (2, 2), &FONT_6X10);
        assert_eq!(scale, 22);
        assert_eq!(display.get_pixel(origin), Some(Rgb888::WHITE));
        assert_eq!(
            display.get_pixel(origin + Point::new(21, 43)),
            Some(Rgb888::WHITE)
        );
        assert_eq!(
            display.get_pixel(origin + Point::new(22, 0)),
            Some(Rgb888::BLACK)
        );
    }
}
