//! Fuzz the whole ONNX import: decode, validate, convert every node to IR (with constant
//! folding through the interpreter) and verify. Any byte string must give `Ok` or `Err`,
//! never a panic. Run with `cargo +nightly fuzz run import_model_bytes` from `fuzz/`.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(model) =
        dqc_frontend::onnx::load_model_from_bytes(data, Path::new("/nonexistent-dqc-fuzz"))
    {
        let _ = dqc_frontend::onnx::import_model(&model);
    }
});
