//! ONNX backend node conformance cases through the importer and the interpreter.
//!
//! Every case of `shared/onnx-node` whose model uses only registered ops is imported,
//! run with `dqc_ir::interp::run` on each data set, and compared with the expected
//! outputs (floats: max abs error ≤ 1e-4·max(1, max |ref|); integers and bools exactly).
//! A failing case must be listed, with its reason, in `conformance_known_failures.txt`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dqc_frontend::onnx::import::{import_with, import_with_constants};
use dqc_frontend::onnx::load_model;
use dqc_frontend::onnx::ops::default_registry;
use dqc_frontend::onnx::testdata::{Case, find_onnx_node_dir, load_case};
use dqc_ir::{Graph, Tensor};

fn known_failures() -> BTreeMap<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance_known_failures.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once(' ') {
            Some((n, r)) => (n.to_string(), r.trim().to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

/// Why `got` does not match `want`, if it does not.
fn mismatch(got: &Tensor, want: &Tensor) -> Option<String> {
    if got.shape() != want.shape() {
        return Some(format!(
            "shape {:?}, expected {:?}",
            got.shape(),
            want.shape()
        ));
    }
    if got.dtype().is_float() || want.dtype().is_float() {
        let (g, w) = (got.to_f32_vec(), want.to_f32_vec());
        let scale = w
            .iter()
            .filter(|v| v.is_finite())
            .fold(1.0f32, |m, v| m.max(v.abs()));
        let tol = 1e-4 * scale;
        for (i, (a, b)) in g.iter().zip(&w).enumerate() {
            let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= tol;
            if !ok {
                return Some(format!("element {i}: {a}, expected {b} (tolerance {tol})"));
            }
        }
        None
    } else {
        let (g, w) = (got.to_i64_vec(), want.to_i64_vec());
        g.iter()
            .zip(&w)
            .position(|(a, b)| a != b)
            .map(|i| format!("element {i}: {}, expected {}", g[i], w[i]))
    }
}

/// Import a case. Conformance models often feed shapes, axes and sizes as inputs, which
/// dqc needs at compile time: if the plain import says so, the inputs are frozen to the
/// first data set's values (every data set of such cases shares them) and the import is
/// retried.
fn import_case(case: &Case) -> Result<Graph, String> {
    let registry = default_registry();
    match import_with(&case.model, &registry) {
        Ok(g) => Ok(g),
        Err(e)
            if e.to_string().contains("must be known at compile time")
                || e.to_string().contains("needs compile-time") =>
        {
            let frozen: BTreeMap<String, Tensor> = case
                .data_sets
                .first()
                .map(|s| s.inputs.iter().cloned().collect())
                .unwrap_or_default();
            let frozen: BTreeMap<String, Tensor> = frozen
                .into_iter()
                .filter(|(_, t)| !t.dtype().is_float() || t.numel() == 1)
                .collect();
            import_with_constants(&case.model, &registry, &frozen)
                .map_err(|e| format!("import (with frozen shape inputs): {e}"))
        }
        Err(e) => Err(format!("import: {e}")),
    }
}

fn run_case(dir: &Path) -> Result<(), String> {
    let case = load_case(dir).map_err(|e| format!("load: {e}"))?;
    let graph = import_case(&case)?;
    let names: Vec<String> = graph
        .inputs()
        .iter()
        .map(|&id| graph.node(id).name().to_string())
        .collect();
    for set in &case.data_sets {
        let mut inputs = Vec::new();
        for n in &names {
            let t = set
                .inputs
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, t)| t.clone())
                .ok_or_else(|| format!("data set has no input `{n}`"))?;
            inputs.push(t);
        }
        let outs = dqc_ir::interp::run(&graph, &inputs).map_err(|e| format!("run: {e}"))?;
        if outs.len() != set.outputs.len() {
            return Err(format!(
                "{} outputs, expected {}",
                outs.len(),
                set.outputs.len()
            ));
        }
        for (got, (name, want)) in outs.iter().zip(&set.outputs) {
            if let Some(why) = mismatch(got, want) {
                return Err(format!("output `{name}`: {why}"));
            }
        }
    }
    Ok(())
}

fn supported_cases(root: &Path) -> Vec<PathBuf> {
    let registry = default_registry();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.into_iter()
        .filter(|d| {
            let Ok(m) = load_model(&d.join("model.onnx")) else {
                return false;
            };
            m.nodes().all(|n| {
                let opset = m.opset_version(&n.domain).unwrap_or(0);
                registry.supports(&n.domain, &n.op_type, opset)
            })
        })
        .collect()
}

#[test]
fn conformance_cases_of_registered_ops() {
    let Some(root) = find_onnx_node_dir(Path::new(env!("CARGO_MANIFEST_DIR"))) else {
        eprintln!("note: shared/onnx-node not found; test skipped");
        return;
    };
    let known = known_failures();
    let cases = supported_cases(&root);
    let mut passed = 0;
    let mut failed = Vec::new();
    let mut unexpected = Vec::new();
    let mut fixed = Vec::new();
    for dir in &cases {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let result = std::panic::catch_unwind(|| run_case(dir))
            .unwrap_or_else(|_| Err("panicked".to_string()));
        match result {
            Ok(()) => {
                passed += 1;
                if known.contains_key(&name) {
                    fixed.push(name);
                }
            }
            Err(why) => {
                if !known.contains_key(&name) {
                    unexpected.push(format!("{name}: {why}"));
                }
                failed.push(format!("{name}: {why}"));
            }
        }
    }
    println!("{passed} passed, {} failed", failed.len());
    for f in &failed {
        println!("  FAIL {f}");
    }
    for f in &fixed {
        println!("  listed as a known failure but passes: {f}");
    }
    assert!(passed > 100, "only {passed} cases passed");
    assert!(
        unexpected.is_empty(),
        "{} failures not in conformance_known_failures.txt:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
}
