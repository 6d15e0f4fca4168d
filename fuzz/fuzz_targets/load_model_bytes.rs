//! Fuzz the ONNX loader: any byte string must decode and validate to `Ok` or `Err`,
//! never panic, hang or allocate without bound. Run with
//! `cargo +nightly fuzz run load_model_bytes` from the repository root.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // External data is resolved against a folder that does not exist, so the target never
    // reads files outside the input.
    let _ = dqc_frontend::onnx::load_model_from_bytes(data, Path::new("/nonexistent-dqc-fuzz"));
});
