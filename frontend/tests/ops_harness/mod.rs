//! Per-family conformance runner for the compute op converters: imports the ONNX node
//! cases whose names start with given prefixes, runs them with the IR interpreter and
//! compares with the expected outputs (floats: max abs err ≤ 1e-4·max(1, max|ref|); ints
//! and bools exact). Cases listed in `conformance_known_failures_ops.txt` may fail; every
//! other selected case must pass.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use dqc_frontend::onnx::OnnxModel;
use dqc_frontend::onnx::import::import_model;
use dqc_frontend::onnx::load_model_from_bytes;
use dqc_frontend::onnx::proto::TensorProto;
use dqc_frontend::onnx::testdata::{DataSet, find_onnx_node_dir, load_case};
use dqc_ir::{DType, Graph, Tensor};
use prost::Message;

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
        return Err(format!(
            "shape {:?}, expected {:?}",
            got.shape(),
            want.shape()
        ));
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
            Some(i) => Err(format!(
                "element {i}: got {:?}, expected {:?}",
                g.get(i),
                w.get(i)
            )),
            None => Ok(()),
        }
    }
}

/// The model with the runtime inputs that are integer vectors, or float and 8-bit vectors
/// of at most 8 entries (axes, `k`, pads, sizes, scales, zero points), made initializers holding the
/// data set's values: dqc needs such operands at compile time, and real exports have
/// them as constants; the conformance cases feed them as inputs.
fn freeze(model: &OnnxModel, dir: &Path, set: &[(String, Tensor)]) -> Result<OnnxModel, String> {
    let mut proto = model.proto().clone();
    let runtime: BTreeSet<String> = model.runtime_inputs().map(|v| v.name.clone()).collect();
    let graph = proto.graph.as_mut().ok_or("the model has no graph")?;
    for (name, t) in set {
        if !runtime.contains(name) || t.shape().len() > 1 {
            continue;
        }
        let mut tp = TensorProto {
            name: name.clone(),
            dims: t.shape().iter().map(|&d| d as i64).collect(),
            ..Default::default()
        };
        match t.dtype() {
            DType::I64 => {
                tp.data_type = 7;
                tp.int64_data = t.to_i64_vec();
            }
            DType::I32 => {
                tp.data_type = 6;
                tp.int32_data = t.to_i64_vec().iter().map(|&v| v as i32).collect();
            }
            DType::F32 if t.numel() <= 8 => {
                tp.data_type = 1;
                tp.float_data = t.to_f32_vec();
            }
            DType::F8E4M3 | DType::F8E5M2 | DType::I8 | DType::U8 if t.numel() <= 8 => {
                // Bit patterns in int32_data, as ONNX stores 8-bit types.
                tp.data_type = match t.dtype() {
                    DType::F8E4M3 => 17,
                    DType::F8E5M2 => 19,
                    DType::I8 => 3,
                    _ => 2,
                };
                tp.int32_data = t.bytes().iter().map(|&b| i32::from(b)).collect();
            }
            _ => continue,
        }
        graph.initializer.push(tp);
    }
    let bytes = proto.encode_to_vec();
    load_model_from_bytes(&bytes, dir).map_err(|e| format!("reload: {e}"))
}

/// Import and run one case; `Err` is the reason it fails. An import that fails because
/// an operand must be known at compile time is retried with [`freeze`]; `Ok(true)` says
/// the case passed that way.
pub fn run_case(dir: &Path) -> Result<bool, String> {
    let case = load_case(dir).map_err(|e| format!("load: {e}"))?;
    let mut frozen = false;
    for set in &case.data_sets {
        let (model, graph) = match import_model(&case.model) {
            Ok(g) => (None, g),
            Err(e) if e.to_string().contains("known at compile time") => {
                let m = freeze(&case.model, dir, &set.inputs)?;
                let g = import_model(&m).map_err(|e| format!("import (frozen): {e}"))?;
                frozen = true;
                (Some(m), g)
            }
            Err(e) => return Err(format!("import: {e}")),
        };
        let model = model.as_ref().unwrap_or(&case.model);
        run_set(model, &graph, set)?;
    }
    Ok(frozen)
}

fn run_set(model: &OnnxModel, graph: &Graph, set: &DataSet) -> Result<(), String> {
    let input_names: Vec<String> = model.runtime_inputs().map(|v| v.name.clone()).collect();
    let output_names: Vec<String> = model.outputs().iter().map(|v| v.name.clone()).collect();
    {
        let by_name: BTreeMap<&str, &Tensor> =
            set.inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mut inputs = Vec::new();
        for n in &input_names {
            match by_name.get(n.as_str()) {
                Some(t) => inputs.push((*t).clone()),
                None => return Err(format!("no data for input `{n}`")),
            }
        }
        let outs = dqc_ir::interp::run(graph, &inputs).map_err(|e| format!("run: {e}"))?;
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
/// is not next to the checkout). `_expanded` cases (the op written as a function of
/// other ops) are left to the general conformance harness: they test those other ops.
pub fn cases(prefixes: &[&str]) -> Option<Vec<PathBuf>> {
    let root = find_onnx_node_dir(Path::new(env!("CARGO_MANIFEST_DIR")))?;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                !n.contains("_expanded") && prefixes.iter().any(|pre| n.starts_with(pre))
            })
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
    let mut frozen = 0;
    let mut failed = Vec::new();
    let mut unexpected = BTreeSet::new();
    for d in &dirs {
        let name = d
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        match run_case(d) {
            Ok(f) => {
                passed += 1;
                frozen += usize::from(f);
            }
            Err(reason) => {
                if !known.contains_key(&name) {
                    unexpected.insert(name.clone());
                }
                failed.push((name, reason));
            }
        }
    }
    println!(
        "{family}: {passed} passed ({frozen} with constant-operand inputs frozen), {} failed",
        failed.len()
    );
    for (n, r) in &failed {
        let mark = if unexpected.contains(n) {
            "UNEXPECTED"
        } else {
            "known"
        };
        println!("  [{mark}] {n}: {r}");
    }
    assert!(
        unexpected.is_empty(),
        "{family}: unexpected failures: {unexpected:?}"
    );
}
