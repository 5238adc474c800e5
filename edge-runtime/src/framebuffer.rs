//! Linux framebuffer (`/dev/fbN`) as an embedded-graphics `DrawTarget`.
//!
//! No maintained crate does this for embedded-graphics 0.8, so it is written here: geometry and
//! pixel layout come from the fbdev ioctls (`FBIOGET_VSCREENINFO`/`FBIOGET_FSCREENINFO`); frames
//! are drawn into a back buffer in the device's own format and written with one `pwrite` per
//! frame (no tearing from partial draws, and a device that disappears only fails `present`).
//! A plain file with an explicit geometry works the same way, which is how it is tested headless.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use embedded_graphics::pixelcolor::{Rgb888, RgbColor};
use embedded_graphics::prelude::*;

use crate::canvas::inside;
use crate::error::{EdgeError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// 16 bpp, red in bits 11–15, green 5–10, blue 0–4, little-endian.
    Rgb565,
    /// 32 bpp, bytes B, G, R, X (or A) in memory: XRGB8888 and ARGB8888.
    Xrgb8888,
}

impl PixelFormat {
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Rgb565 => 2,
            PixelFormat::Xrgb8888 => 4,
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "rgb565" => Ok(PixelFormat::Rgb565),
            "xrgb8888" | "argb8888" => Ok(PixelFormat::Xrgb8888),
            other => Err(EdgeError::Display {
                target: "framebuffer".into(),
                message: format!("unsupported pixel format `{other}` (rgb565, xrgb8888, argb8888)"),
            }),
        }
    }

    /// The bytes of one pixel.
    pub fn encode(self, c: Rgb888, out: &mut [u8]) {
        match self {
            PixelFormat::Rgb565 => {
                let v =
                    ((c.r() as u16 >> 3) << 11) | ((c.g() as u16 >> 2) << 5) | (c.b() as u16 >> 3);
                out[..2].copy_from_slice(&v.to_le_bytes());
            }
            PixelFormat::Xrgb8888 => out[..4].copy_from_slice(&[c.b(), c.g(), c.r(), 0xff]),
        }
    }

    /// The colour stored in `bytes` (RGB565 expanded to 8 bits per channel).
    pub fn decode(self, bytes: &[u8]) -> Rgb888 {
        match self {
            PixelFormat::Rgb565 => {
                let v = u16::from_le_bytes([bytes[0], bytes[1]]);
                let (r, g, b) = ((v >> 11) as u8, ((v >> 5) & 0x3f) as u8, (v & 0x1f) as u8);
                Rgb888::new(
                    (r << 3) | (r >> 2),
                    (g << 2) | (g >> 4),
                    (b << 3) | (b >> 2),
                )
            }
            PixelFormat::Xrgb8888 => Rgb888::new(bytes[2], bytes[1], bytes[0]),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub width: u32,
    pub height: u32,
    /// Bytes per row (may exceed width × bytes per pixel on real devices).
    pub line_length: usize,
    pub format: PixelFormat,
}

impl Geometry {
    pub fn packed(width: u32, height: u32, format: PixelFormat) -> Self {
        Self {
            width,
            height,
            line_length: width as usize * format.bytes_per_pixel(),
            format,
        }
    }

    pub fn byte_len(&self) -> usize {
        self.line_length * self.height as usize
    }
}

/// `struct fb_bitfield` from linux/fb.h.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct Bitfield {
    offset: u32,
    length: u32,
    msb_right: u32,
}

/// `struct fb_var_screeninfo` from linux/fb.h.
#[repr(C)]
#[derive(Default)]
struct VarScreeninfo {
    xres: u32,
    yres: u32,
    xres_virtual: u32,
    yres_virtual: u32,
    xoffset: u32,
    yoffset: u32,
    bits_per_pixel: u32,
    grayscale: u32,
    red: Bitfield,
    green: Bitfield,
    blue: Bitfield,
    transp: Bitfield,
    rest: [u32; 20],
}

/// `struct fb_fix_screeninfo` from linux/fb.h.
#[repr(C)]
#[derive(Default)]
struct FixScreeninfo {
    id: [u8; 16],
    smem_start: libc::c_ulong,
    smem_len: u32,
    kind: u32,
    type_aux: u32,
    visual: u32,
    xpanstep: u16,
    ypanstep: u16,
    ywrapstep: u16,
    line_length: u32,
    mmio_start: libc::c_ulong,
    mmio_len: u32,
    accel: u32,
    capabilities: u16,
    reserved: [u16; 2],
}

const FBIOGET_VSCREENINFO: libc::c_ulong = 0x4600;
const FBIOGET_FSCREENINFO: libc::c_ulong = 0x4602;

/// Reads geometry and pixel layout of an fbdev device.
fn query(file: &File, path: &Path) -> Result<Geometry> {
    let err = |message: String| EdgeError::Display {
        target: path.display().to_string(),
        message,
    };
    let mut var = VarScreeninfo::default();
    let mut fix = FixScreeninfo::default();
    // SAFETY: both ioctls fill a struct of exactly the kernel's layout, which we own.
    let ok = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            FBIOGET_VSCREENINFO as _,
            &mut var as *mut VarScreeninfo,
        ) == 0
            && libc::ioctl(
                file.as_raw_fd(),
                FBIOGET_FSCREENINFO as _,
                &mut fix as *mut FixScreeninfo,
            ) == 0
    };
    if !ok {
        return Err(EdgeError::NotAFramebuffer {
            target: path.display().to_string(),
            source: std::io::Error::last_os_error(),
        });
    }
    let format = match (
        var.bits_per_pixel,
        var.red.offset,
        var.green.offset,
        var.blue.offset,
    ) {
        (16, 11, 5, 0) => PixelFormat::Rgb565,
        (32, 16, 8, 0) => PixelFormat::Xrgb8888,
        (bpp, r, g, b) => {
            return Err(err(format!(
                "unsupported pixel format: {bpp} bpp with red/green/blue at bits {r}/{g}/{b} \
                 (supported: RGB565, XRGB8888, ARGB8888)"
            )))
        }
    };
    Ok(Geometry {
        width: var.xres,
        height: var.yres,
        line_length: fix.line_length as usize,
        format,
    })
}

pub struct Framebuffer {
    path: PathBuf,
    geometry: Geometry,
    back: Vec<u8>,
    file: Option<File>,
}

impl Framebuffer {
    /// A framebuffer device; geometry from the kernel.
    pub fn open_device(path: &Path) -> Result<Self> {
        let file = open(path)?;
        let geometry = query(&file, path)?;
        Ok(Self {
            path: path.to_path_buf(),
            back: vec![0; geometry.byte_len()],
            geometry,
            file: Some(file),
        })
    }

    /// A plain file (or a device whose geometry you know) with an explicit geometry; the file is
    /// created and sized if needed.
    pub fn open_file(path: &Path, geometry: Geometry) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|source| io_error(path, "cannot open", source))?;
        Ok(Self {
            path: path.to_path_buf(),
            back: vec![0; geometry.byte_len()],
            geometry,
            file: Some(file),
        })
    }

    /// Writes the back buffer to the device. On failure, or when the path no longer names the
    /// open file (device node removed and re-created, file replaced), the handle is dropped and
    /// reopened on the next call, so a display that goes away and comes back recovers.
    pub fn present(&mut self) -> Result<()> {
        if self
            .file
            .as_ref()
            .is_some_and(|f| !same_file(f, &self.path))
        {
            tracing::warn!("{} went away; reopening", self.path.display());
            self.file = None;
        }
        if self.file.is_none() {
            self.file = Some(open(&self.path)?);
        }
        let result = self
            .file
            .as_ref()
            .expect("opened above")
            .write_all_at(&self.back, 0);
        result.map_err(|source| {
            self.file = None;
            io_error(&self.path, "write failed", source)
        })
    }
}

fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn open(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| io_error(path, "cannot open", source))
}

fn io_error(path: &Path, action: &'static str, source: std::io::Error) -> EdgeError {
    EdgeError::DisplayIo {
        target: path.display().to_string(),
        action,
        source,
    }
}

impl OriginDimensions for Framebuffer {
    fn size(&self) -> Size {
        Size::new(self.geometry.width, self.geometry.height)
    }
}

impl DrawTarget for Framebuffer {
    type Color = Rgb888;
    type Error = std::convert::Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Self::Error> {
        let g = self.geometry;
        let bpp = g.format.bytes_per_pixel();
        let size = self.size();
        for Pixel(p, c) in pixels {
            if let Some((x, y)) = inside(p, size) {
                let at = y * g.line_length + x * bpp;
                g.format.encode(c, &mut self.back[at..at + bpp]);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_formats_round_trip() {
        for f in [PixelFormat::Rgb565, PixelFormat::Xrgb8888] {
            let mut b = [0u8; 4];
            for c in [
                Rgb888::WHITE,
                Rgb888::BLACK,
                Rgb888::RED,
                Rgb888::new(0x12, 0x80, 0xf0),
            ] {
                f.encode(c, &mut b);
                let d = f.decode(&b);
                let tol = if f == PixelFormat::Rgb565 { 8 } else { 0 };
                assert!(
                    (d.r() as i32 - c.r() as i32).abs() <= tol
                        && (d.g() as i32 - c.g() as i32).abs() <= tol
                        && (d.b() as i32 - c.b() as i32).abs() <= tol,
                    "{f:?} {c:?} {d:?}"
                );
            }
        }
        let mut b = [0u8; 2];
        PixelFormat::Rgb565.encode(Rgb888::RED, &mut b);
        assert_eq!(u16::from_le_bytes(b), 0xf800);
        assert_eq!(std::mem::size_of::<VarScreeninfo>(), 160);
        assert_eq!(
            std::mem::size_of::<FixScreeninfo>(),
            if cfg!(target_pointer_width = "64") {
                80
            } else {
                68
            }
        );
    }
}
