//! The kiosk's HTTP query-string parser.
#![no_main]
use gan_edge_runtime::http::parse_query;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(query) = std::str::from_utf8(data) {
        let _ = parse_query(query);
    }
});
