//! Golden snapshots (insta) of the IR text the importer makes of the `dit` and `mamba`
//! fixtures, weights of more than 16 elements left out as `external` references. A
//! change to a converter that changes these graphs shows up as a snapshot diff; review
//! it and accept with `INSTA_UPDATE=always` (or `cargo insta review`).

use std::path::Path;

use dqc_frontend::onnx::import::import_with;
use dqc_frontend::onnx::load_model;
use dqc_frontend::onnx::ops::default_registry;

/// The imported IR text of `models/fixtures/NAME/model.onnx`, or None without fixtures.
fn imported_text(name: &str) -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/fixtures")
        .join(name)
        .join("model.onnx");
    if !path.is_file() {
        eprintln!("note: {} not found; test skipped", path.display());
        return None;
    }
    let model = load_model(&path).unwrap_or_else(|e| panic!("{name}: load: {e}"));
    let g =
        import_with(&model, &default_registry()).unwrap_or_else(|e| panic!("{name}: import: {e}"));
    Some(dqc_ir::text::print_with_weights(&g, 16).0)
}

#[test]
fn dit_imported_ir() {
    if let Some(text) = imported_text("dit") {
        insta::assert_snapshot!("dit_imported_ir", text);
    }
}

#[test]
fn mamba_imported_ir() {
    if let Some(text) = imported_text("mamba") {
        insta::assert_snapshot!("mamba_imported_ir", text);
    }
}
