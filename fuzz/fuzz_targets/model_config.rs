//! A model config as a generator file or checkpoint carries it (JSON in the safetensors
//! metadata): parsing, shape validation and the multiply-accumulate count must never panic.
#![no_main]
use gan_models::ModelConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = ModelConfig::from_json(&String::from_utf8_lossy(data)) {
        let _ = config.generator.net.macs();
        let _ = config.discriminator.net.macs();
    }
});
