//! Real exports (`models/fixtures/*`): every fixture whose ops are all registered is
//! imported, run in the interpreter on `inputs.npz` and compared with onnxruntime's
//! `outputs.npz` (max abs error ≤ 1e-4·max(1, max |ref|)). Fixtures that use an op
//! without a converter are listed with the missing ops and skipped.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use dqc_frontend::onnx::import::import_with;
use dqc_frontend::onnx::load_model;
use dqc_frontend::onnx::ops::default_registry;
use dqc_ir::npz::read_npz;

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/fixtures");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    dirs.retain(|d| d.join("model.onnx").is_file() && d.join("outputs.npz").is_file());
    dirs.sort();
    dirs
}

fn check(dir: &Path) -> Result<String, String> {
    let registry = default_registry();
    let model = load_model(&dir.join("model.onnx")).map_err(|e| e.to_string())?;
    let missing: BTreeSet<String> = model
        .nodes()
        .filter(|n| {
            let opset = model.opset_version(&n.domain).unwrap_or(0);
            !registry.supports(&n.domain, &n.op_type, opset)
        })
        .map(|n| n.op_type.clone())
        .collect();
    if !missing.is_empty() {
        let list: Vec<String> = missing.into_iter().collect();
        return Ok(format!("skipped: no converter for {}", list.join(", ")));
    }
    let g = import_with(&model, &registry).map_err(|e| format!("import: {e}"))?;
    let given = read_npz(dir.join("inputs.npz")).map_err(|e| e.to_string())?;
    let want = read_npz(dir.join("outputs.npz")).map_err(|e| e.to_string())?;
    let mut inputs = Vec::new();
    for &id in g.inputs() {
        let name = g.node(id).name();
        let t = given
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| format!("inputs.npz has no `{name}`"))?;
        inputs.push(t);
    }
    let outs = dqc_ir::interp::run(&g, &inputs).map_err(|e| format!("run: {e}"))?;
    let mut report = Vec::new();
    for (&v, got) in g.outputs().iter().zip(&outs) {
        let name = g.value_name(v);
        let (_, w) = want
            .iter()
            .find(|(k, _)| k == name)
            .ok_or_else(|| format!("outputs.npz has no `{name}`"))?;
        if got.shape() != w.shape() {
            return Err(format!(
                "`{name}`: shape {:?}, expected {:?}",
                got.shape(),
                w.shape()
            ));
        }
        let (a, b) = (got.to_f32_vec(), w.to_f32_vec());
        let scale = b.iter().fold(1.0f32, |m, x| m.max(x.abs()));
        let err = a
            .iter()
            .zip(&b)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        if err.is_nan() || err > 1e-4 * scale {
            return Err(format!("`{name}`: max abs error {err} (scale {scale})"));
        }
        report.push(format!("`{name}` max abs error {err:.2e}"));
    }
    Ok(format!(
        "ok: {} nodes, {}",
        g.node_count(),
        report.join(", ")
    ))
}

#[test]
fn fixtures_import_and_match_onnxruntime() {
    let dirs = fixtures();
    if dirs.is_empty() {
        eprintln!("note: models/fixtures not found; test skipped");
        return;
    }
    let mut failures = Vec::new();
    for d in &dirs {
        let name = d
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match check(d) {
            Ok(s) => println!("{name}: {s}"),
            Err(e) => {
                println!("{name}: FAILED {e}");
                failures.push(format!("{name}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
