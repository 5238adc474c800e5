//! MNIST from the standard IDX files, gzipped or not, with every header field checked.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use gan_models::DatasetInfo;

use crate::data::dataset::Dataset;
use crate::error::{Result, TrainError};

pub const IMAGES_MAGIC: u32 = 0x0000_0803;
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// Refuse absurd headers before allocating (the full training set is 47 MB).
const MAX_BYTES: u64 = 1 << 30;

pub const ATTRIBUTION: &str =
    "MNIST handwritten digits by Yann LeCun, Corinna Cortes and Christopher J.C. Burges, \
licensed CC BY-SA 3.0 (http://yann.lecun.com/exdb/mnist/).";

/// Which half of MNIST to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    fn stem(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

pub fn info() -> DatasetInfo {
    DatasetInfo {
        name: "mnist".into(),
        class_names: (0..10).map(|d| d.to_string()).collect(),
        attributes: vec![],
        attribution: ATTRIBUTION.into(),
    }
}

/// Loads `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]` from `dir`.
pub fn load(dir: &Path, split: Split) -> Result<Dataset> {
    let images_path = find(dir, &format!("{}-images-idx3-ubyte", split.stem()))?;
    let labels_path = find(dir, &format!("{}-labels-idx1-ubyte", split.stem()))?;
    let (dims, pixels) = read_idx(&images_path, IMAGES_MAGIC)?;
    let (ldims, labels) = read_idx(&labels_path, LABELS_MAGIC)?;
    if dims[0] != ldims[0] {
        return Err(TrainError::data(
            &labels_path,
            format!(
                "{} labels but {} has {} images",
                ldims[0],
                images_path.display(),
                dims[0]
            ),
        ));
    }
    if let Some(bad) = labels.iter().find(|&&l| l > 9) {
        return Err(TrainError::data(
            &labels_path,
            format!("label {bad} is not a digit"),
        ));
    }
    let labels = labels.into_iter().map(u32::from).collect();
    Dataset::new(pixels, labels, [1, dims[1], dims[2]], info())
}

fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    let candidates = [dir.join(format!("{stem}.gz")), dir.join(stem)];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            TrainError::data(
                dir,
                format!("neither {stem}.gz nor {stem} found (is this an MNIST directory?)"),
            )
        })
}

/// Reads one IDX file; returns its dimensions and payload.
pub fn read_idx(path: &Path, magic: u32) -> Result<(Vec<usize>, Vec<u8>)> {
    let raw = std::fs::read(path).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        action: "read",
        source,
    })?;
    decode_idx(&raw, magic).map_err(|message| TrainError::data(path, message))
}

/// An IDX file's bytes, gzipped (detected by its magic bytes) or raw.
pub fn decode_idx(raw: &[u8], magic: u32) -> std::result::Result<(Vec<usize>, Vec<u8>), String> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(raw)
            .take(MAX_BYTES)
            .read_to_end(&mut out)
            .map_err(|e| format!("corrupt or truncated gzip: {e}"))?;
        parse_idx(&out, magic)
    } else {
        parse_idx(raw, magic)
    }
}

/// The IDX format: big-endian magic (0, 0, type 0x08 = u8, rank), `rank` u32 dimensions, data.
pub fn parse_idx(bytes: &[u8], magic: u32) -> std::result::Result<(Vec<usize>, Vec<u8>), String> {
    let word = |i: usize| -> Option<u32> {
        bytes
            .get(i * 4..i * 4 + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let found = word(0).ok_or("file is shorter than an IDX header")?;
    if found != magic {
        return Err(format!(
            "wrong magic number 0x{found:08x}, expected 0x{magic:08x} ({})",
            if magic == IMAGES_MAGIC {
                "IDX3 u8 images"
            } else {
                "IDX1 u8 labels"
            }
        ));
    }
    let rank = (magic & 0xff) as usize;
    let mut dims = Vec::with_capacity(rank);
    for i in 1..=rank {
        let d = word(i).ok_or("truncated IDX header")? as usize;
        if d == 0 {
            return Err(format!("dimension {i} is zero"));
        }
        dims.push(d);
    }
    let expected = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .filter(|&n| n <= MAX_BYTES)
        .ok_or_else(|| format!("dimensions {dims:?} are implausibly large"))?;
    let data = &bytes[(rank + 1) * 4..];
    if (data.len() as u64) != expected {
        return Err(format!(
            "header says {dims:?} ({expected} bytes) but the file holds {} bytes of data{}",
            data.len(),
            if (data.len() as u64) < expected {
                " (truncated)"
            } else {
                ""
            }
        ));
    }
    Ok((dims, data.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v.extend(data);
        v
    }

    #[test]
    fn parses_and_rejects() {
        let ok = idx(IMAGES_MAGIC, &[2, 1, 2], &[1, 2, 3, 4]);
        assert_eq!(
            parse_idx(&ok, IMAGES_MAGIC).unwrap(),
            (vec![2, 1, 2], vec![1, 2, 3, 4])
        );
        assert!(parse_idx(&ok, LABELS_MAGIC)
            .unwrap_err()
            .contains("wrong magic"));
        assert!(parse_idx(&ok[..ok.len() - 1], IMAGES_MAGIC)
            .unwrap_err()
            .contains("truncated"));
        assert!(parse_idx(&ok[..6], IMAGES_MAGIC)
            .unwrap_err()
            .contains("header"));
        let huge = idx(IMAGES_MAGIC, &[u32::MAX, u32::MAX, u32::MAX], &[]);
        assert!(parse_idx(&huge, IMAGES_MAGIC)
            .unwrap_err()
            .contains("implausibly"));
        assert!(parse_idx(&[], IMAGES_MAGIC).is_err());
    }
}
