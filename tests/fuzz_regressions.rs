//! Every committed fuzz input of every target (seeds and what the fuzzers found, under `fuzz/`)
//! through the same calls the fuzz targets make, in plain `cargo test`: they must return, never
//! panic.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Device;
use gan_contract::{AttributeRequest, ModelInfo};
use gan_edge_runtime::http::parse_query;
use gan_models::{Architecture, LoadedGenerator, ModelConfig, TensorFile, Weights};
use gan_train::data::folder::decode_image;
use gan_train::data::mnist::{decode_idx, IMAGES_MAGIC, LABELS_MAGIC};

/// The committed inputs of one fuzz target.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut all = Vec::new();
    for kind in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join(target)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            all.push((path, bytes));
        }
    }
    assert!(!all.is_empty(), "no committed inputs for {target}");
    all
}

#[test]
fn idx_inputs() {
    for (_, data) in inputs("idx") {
        let _ = decode_idx(&data, IMAGES_MAGIC);
        let _ = decode_idx(&data, LABELS_MAGIC);
    }
}

#[test]
fn image_folder_inputs() {
    let mut decoded = 0;
    for (_, data) in inputs("image_folder") {
        if let Ok(planes) = decode_image(&data, 16, 3) {
            assert_eq!(planes.len(), 3 * 16 * 16);
            decoded += 1;
        }
        let _ = decode_image(&data, 8, 1);
    }
    assert!(decoded > 0, "not even the seed images decode");
}

#[test]
fn checkpoint_inputs() {
    let expected = Architecture::from_name("mnist-cdcgan", 1)
        .unwrap()
        .config(gan_train::data::mnist::info())
        .unwrap();
    for (path, data) in inputs("checkpoint") {
        for weights in [Weights::Inference, Weights::Trained] {
            if let Ok(file) = TensorFile::parse(&data, &path, &Device::Cpu) {
                let _ = LoadedGenerator::from_file(file, &path, weights);
            }
        }
        if let Ok(file) = TensorFile::parse(&data, &path, &Device::Cpu) {
            let _ = gan_train::training::checkpoint::from_file(file, &path, &expected);
        }
    }
}

#[test]
fn model_config_inputs() {
    let mut valid = 0;
    for (path, data) in inputs("model_config") {
        if let Ok(config) = ModelConfig::from_json(&String::from_utf8_lossy(&data)) {
            config.generator.net.macs().unwrap();
            let _ = config.discriminator.net.macs();
            valid += 1;
        } else {
            assert!(
                !path.ends_with("mnist-cdcgan.json"),
                "the shipped config parses"
            );
        }
    }
    assert!(valid >= 2, "the shipped models' configs parse");
}

#[test]
fn onnx_metadata_inputs() {
    let (mut accepted, mut rows) = (0, 0);
    for (_, data) in inputs("onnx_metadata") {
        let text = String::from_utf8_lossy(&data);
        let pairs: HashMap<&str, &str> = text
            .split('\n')
            .filter_map(|line| line.split_once('\0'))
            .collect();
        if let Ok(info) = ModelInfo::from_metadata(|k| pairs.get(k).map(|v| v.to_string())) {
            accepted += 1;
            let _ = info.image_len();
            for label in ["0", "7", "seven", ""] {
                let _ = info.class_index(label);
            }
            let pairs = [("hair", "long03"), ("glasses", "none")];
            if let Ok(request) = AttributeRequest::parse(&info.attributes, pairs) {
                for u in [0.0, 0.5, 0.999_999_999] {
                    let row = request.row(&info.attributes, || u);
                    assert_eq!(row.len(), info.attributes.len());
                }
                rows += 1;
            }
        }
    }
    assert!(accepted > 0, "the shipped model's metadata seed is refused");
    assert!(rows > 0, "no seed has attributes to ask for");
}

#[test]
fn http_query_inputs() {
    for (_, data) in inputs("http_query") {
        if let Ok(query) = std::str::from_utf8(&data) {
            let _ = parse_query(query);
        }
    }
}
