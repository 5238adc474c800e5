//! The edge runtime's reading of an ONNX model's contract metadata. The input is split into
//! key/value strings (NUL between key and value, newline between pairs).
#![no_main]
use std::collections::HashMap;

use gan_contract::{AttributeRequest, ModelInfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let pairs: HashMap<&str, &str> = text
        .split('\n')
        .filter_map(|line| line.split_once('\0'))
        .collect();
    if let Ok(info) = ModelInfo::from_metadata(|k| pairs.get(k).map(|v| v.to_string())) {
        // What the kiosk does next with a model's info must hold up too.
        let _ = info.image_len();
        for label in ["0", "7", "seven", ""] {
            let _ = info.class_index(label);
        }
        // And what it does with an attribute model's request.
        let pairs = [("hair", "long03"), ("glasses", "none")];
        if let Ok(request) = AttributeRequest::parse(&info.attributes, pairs) {
            for u in [0.0, 0.5, 0.999_999_999] {
                let _ = request.row(&info.attributes, || u);
            }
        }
    }
});
