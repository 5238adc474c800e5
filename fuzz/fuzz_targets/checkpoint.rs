//! The safetensors reader behind checkpoints and generator files: header, config metadata,
//! tensor names/shapes/values, the training state and the EMA copy.
#![no_main]
use std::path::Path;

use candle_core::Device;
use gan_models::{Architecture, LoadedGenerator, TensorFile, Weights};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.safetensors");
    for weights in [Weights::Inference, Weights::Trained] {
        if let Ok(file) = TensorFile::parse(data, path, &Device::Cpu) {
            let _ = LoadedGenerator::from_file(file, path, weights);
        }
    }
    if let Ok(file) = TensorFile::parse(data, path, &Device::Cpu) {
        let expected = Architecture::from_name("mnist-cdcgan", 1)
            .expect("a known architecture")
            .config(gan_train::data::mnist::info())
            .expect("the reference config is valid");
        let _ = gan_train::training::checkpoint::from_file(file, path, &expected);
    }
});
