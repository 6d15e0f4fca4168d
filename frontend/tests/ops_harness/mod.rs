//! Per-family conformance runner for the compute op converters: imports the ONNX node
//! cases whose names start with given prefixes, runs them with the IR interpreter and
//! compares with the expected outputs (floats: max abs err ≤ 1e-4·max(1, max|ref|); ints
//! and bools exact). Cases listed in `conformance_known_failures_ops.txt` may fail; every
//! other selected case must pass.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use dqc_frontend::onnx::import::import_model;
use dqc_frontend::onnx::testdata::{find_onnx_node_dir, load_case};
use dqc_ir::Tensor;

/// The known failures: case name → reason.
pub fn known_failures() -> BTreeMap<String, String> {
    let text = include_str!("../conformance_known_failures_ops.txt");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once(char::is_whitespace) {
            Some((n, r)) => (n.to_string(), r.trim().to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

/// Compare one output; `Err` says how it differs.
pub fn compare(got: &Tensor, want: &Tensor) -> Result<(), String> {
    if got.shape() != want.shape() {
        return Err(format!("shape {:?}, expected {:?}", got.shape(), want.shape()));
    }
    if want.dtype().is_float() {
        let (g, w) = (got.to_f32_vec(), want.to_f32_vec());
        let max_ref = w
            .iter()
            .filter(|x| x.is_finite())
            .fold(1.0f32, |m, x| m.max(x.abs()));
        // 1e-4 relative for f32/f64; one or two units in the last place for the 16-bit
        // and 8-bit float types, whose references are rounded to them.
        let rel = match want.dtype() {
            dqc_ir::DType::F32 => 1e-4,
            dqc_ir::DType::F16 => 2e-3,
            _ => 1.6e-2,
        };
        let tol = rel * max_ref;
        for (i, (a, b)) in g.iter().zip(&w).enumerate() {
            let same = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= tol;
            if !same {
                return Err(format!("element {i}: got {a}, expected {b} (tol {tol})"));
            }
        }
        Ok(())
    } else {
        if got.dtype() != want.dtype() {
            return Err(format!("dtype {}, expected {}", got.dtype(), want.dtype()));
        }
        let (g, w) = (got.to_i64_vec(), want.to_i64_vec());
        match g.iter().zip(&w).position(|(a, b)| a != b) {
            Some(i) => Err(format!("element {i}: got {:?}, expected {:?}", g.get(i), w.get(i))),
            None => Ok(()),
        }
    }
}

/// Import and run one case; `Err` is the reason it fails.
pub fn run_case(dir: &Path) -> Result<(), String> {
    let case = load_case(dir).map_err(|e| format!("load: {e}"))?;
    let graph = import_model(&case.model).map_err(|e| format!("import: {e}"))?;
    let input_names: Vec<String> = case.model.runtime_inputs().map(|v| v.name.clone()).collect();
    let output_names: Vec<String> = case.model.outputs().iter().map(|v| v.name.clone()).collect();
    for set in &case.data_sets {
        let by_name: BTreeMap<&str, &Tensor> =
            set.inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mut inputs = Vec::new();
        for n in &input_names {
            match by_name.get(n.as_str()) {
                Some(t) => inputs.push((*t).clone()),
                None => return Err(format!("no data for input `{n}`")),
            }
        }
        let outs = dqc_ir::interp::run(&graph, &inputs).map_err(|e| format!("run: {e}"))?;
        for (name, want) in &set.outputs {
            let k = output_names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| format!("unknown output `{name}`"))?;
            let got = outs.get(k).ok_or_else(|| format!("output {k} missing"))?;
            compare(got, want).map_err(|e| format!("output `{name}`: {e}"))?;
        }
    }
    Ok(())
}

/// The case directories whose names start with one of `prefixes` (None when the corpus
/// is not next to the checkout).
pub fn cases(prefixes: &[&str]) -> Option<Vec<PathBuf>> {
    let root = find_onnx_node_dir(Path::new(env!("CARGO_MANIFEST_DIR")))?;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| prefixes.iter().any(|pre| n.starts_with(pre)))
        })
        .collect();
    dirs.sort();
    Some(dirs)
}

/// Run the cases of one family, print `N passed, M failed` with the failures, and
/// assert that every failing case is a known failure.
pub fn run_family(family: &str, prefixes: &[&str], min_cases: usize) {
    let Some(dirs) = cases(prefixes) else {
        eprintln!("note: shared/onnx-node not found; {family} conformance skipped");
        return;
    };
    assert!(
        dirs.len() >= min_cases,
        "{family}: only {} cases found",
        dirs.len()
    );
    let known = known_failures();
    let mut passed = 0;
    let mut failed = Vec::new();
    let mut unexpected = BTreeSet::new();
    for d in &dirs {
        let name = d
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        match run_case(d) {
            Ok(()) => passed += 1,
            Err(reason) => {
                if !known.contains_key(&name) {
                    unexpected.insert(name.clone());
                }
                failed.push((name, reason));
            }
        }
    }
    println!("{family}: {passed} passed, {} failed", failed.len());
    for (n, r) in &failed {
        let mark = if unexpected.contains(n) { "UNEXPECTED" } else { "known" };
        println!("  [{mark}] {n}: {r}");
    }
    assert!(
        unexpected.is_empty(),
        "{family}: unexpected failures: {unexpected:?}"
    );
}
