//! Every committed fuzz input of the edge runtime's parsers (seeds and findings, under `fuzz/`)
//! through the same calls the fuzz targets make: they must return, never panic.

use std::collections::HashMap;
use std::path::Path;

use gan_edge_runtime::http::parse_query;
use gan_edge_runtime::model::ModelInfo;

fn inputs(target: &str) -> Vec<Vec<u8>> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut all = Vec::new();
    for kind in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join(target)) else {
            continue;
        };
        for e in entries {
            all.push(std::fs::read(e.unwrap().path()).unwrap());
        }
    }
    assert!(!all.is_empty(), "no committed inputs for {target}");
    all
}

#[test]
fn onnx_metadata_inputs() {
    let mut accepted = 0;
    for data in inputs("onnx_metadata") {
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
        }
    }
    assert!(accepted > 0, "the shipped model's metadata seed is refused");
}

#[test]
fn http_query_inputs() {
    for data in inputs("http_query") {
        if let Ok(query) = std::str::from_utf8(&data) {
            let _ = parse_query(query);
        }
    }
}
