//! The MNIST IDX reader, gzipped or raw, as images and as labels.
#![no_main]
use gan_train::data::mnist::{decode_idx, IMAGES_MAGIC, LABELS_MAGIC};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_idx(data, IMAGES_MAGIC);
    let _ = decode_idx(data, LABELS_MAGIC);
});
