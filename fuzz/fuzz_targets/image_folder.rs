//! One file of an image folder: format sniffing, decoding, crop/resize to gray and RGB.
#![no_main]
use gan_train::data::folder::decode_image;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_image(data, 16, 3);
    let _ = decode_image(data, 8, 1);
});
