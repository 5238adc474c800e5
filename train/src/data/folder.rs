//! Image folders (PNG/JPEG): any colour type converted to the model's channels, center-cropped
//! to a square and resized.

use std::path::{Path, PathBuf};

use gan_models::DatasetInfo;
use image::imageops::FilterType;
use image::{DynamicImage, GenericImageView, Rgba, RgbaImage};

use crate::data::dataset::Dataset;
use crate::data::labels::{Attribute, Labels};
use crate::error::{Result, TrainError};

const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// The sorted image files of `dir` (not recursive).
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|source| TrainError::Io {
        path: dir.to_path_buf(),
        action: "read image folder",
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(TrainError::data(
            dir,
            "no PNG or JPEG images in this folder",
        ));
    }
    Ok(files)
}

/// Loads every image as `channels` (1 or 3) × `size` × `size`.
pub fn load(dir: &Path, size: usize, channels: usize, attribution: &str) -> Result<Dataset> {
    load_files(dir, list_images(dir)?, size, channels, attribution)
}

/// [`load`] with each image's attributes from `labels` (see [`Labels::read`] for `known`).
/// The labels are checked before any image is decoded.
pub fn load_labelled(
    dir: &Path,
    labels: &Path,
    known: Option<&[Attribute]>,
    size: usize,
    channels: usize,
    attribution: &str,
) -> Result<Dataset> {
    let files = list_images(dir)?;
    let table = Labels::read(labels, &files, known)?;
    load_files(dir, files, size, channels, attribution)?.with_attributes(table)
}

fn load_files(
    dir: &Path,
    files: Vec<PathBuf>,
    size: usize,
    channels: usize,
    attribution: &str,
) -> Result<Dataset> {
    if channels != 1 && channels != 3 {
        return Err(TrainError::Setting(format!(
            "channels must be 1 or 3, got {channels}"
        )));
    }
    if size == 0 {
        return Err(TrainError::Setting(
            "the image size must be positive".into(),
        ));
    }
    let mut pixels = Vec::with_capacity(files.len() * channels * size * size);
    for file in &files {
        let bytes = std::fs::read(file).map_err(|source| TrainError::Io {
            path: file.clone(),
            action: "read",
            source,
        })?;
        let planes = decode_image(&bytes, size, channels)
            .map_err(|e| TrainError::data(file, format!("unreadable image: {e}")))?;
        pixels.extend(planes);
    }
    let info = DatasetInfo {
        name: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "images".into()),
        class_names: vec![],
        attributes: vec![],
        attribution: attribution.to_string(),
    };
    Dataset::new(pixels, vec![], [channels, size, size], info)
}

/// Largest side accepted; also bounds what a hostile header can make the decoder allocate.
const MAX_SIDE: u32 = 8192;

/// Decodes PNG/JPEG bytes (format sniffed from the content) into `channels × size × size` bytes.
pub fn decode_image(
    bytes: &[u8],
    size: usize,
    channels: usize,
) -> std::result::Result<Vec<u8>, String> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(512 << 20);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| e.to_string())?;
    if img.width() == 0 || img.height() == 0 {
        return Err("image has no pixels".into());
    }
    Ok(to_planes(&img, size, channels))
}

/// Center-crop to a square, resize, composite transparency over white, emit CHW bytes.
pub fn to_planes(img: &DynamicImage, size: usize, channels: usize) -> Vec<u8> {
    let (w, h) = img.dimensions();
    let side = w.min(h);
    let square = img.crop_imm((w - side) / 2, (h - side) / 2, side, side);
    let resized: RgbaImage = if side as usize == size {
        square.to_rgba8()
    } else {
        image::imageops::resize(
            &square.to_rgba8(),
            size as u32,
            size as u32,
            FilterType::CatmullRom,
        )
    };
    let over_white = |p: &Rgba<u8>| -> [u8; 3] {
        let a = p[3] as u32;
        std::array::from_fn(|c| ((p[c] as u32 * a + 255 * (255 - a) + 127) / 255) as u8)
    };
    let plane = size * size;
    let mut out = vec![0u8; channels * plane];
    for (i, p) in resized.pixels().enumerate() {
        let [r, g, b] = over_white(p);
        if channels == 1 {
            // ITU-R 601 luma, as image's to_luma8 uses.
            out[i] = ((r as u32 * 299 + g as u32 * 587 + b as u32 * 114 + 500) / 1000) as u8;
        } else {
            out[i] = r;
            out[plane + i] = g;
            out[2 * plane + i] = b;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_colour_types_and_crops() {
        // 4×2 RGBA: left half transparent, right half opaque red.
        let mut img = RgbaImage::new(4, 2);
        for (x, _, p) in img.enumerate_pixels_mut() {
            *p = if x < 2 {
                Rgba([0, 0, 0, 0])
            } else {
                Rgba([255, 0, 0, 255])
            };
        }
        let planes = to_planes(&DynamicImage::ImageRgba8(img), 2, 3);
        // Center crop keeps columns 1..3: transparent (white) then red.
        assert_eq!(&planes[0..4], &[255, 255, 255, 255]);
        assert_eq!(&planes[4..8], &[255, 0, 255, 0]);
        let gray = to_planes(&DynamicImage::new_luma8(3, 3), 3, 1);
        assert_eq!(gray, vec![0; 9]);
    }
}
