//! ONNX backend node conformance cases through the importer and the IR interpreter.
//!
//! Every case of `shared/onnx-node` whose model uses only registered ops (its `_expanded`
//! variants included) is imported, run with `dqc_ir::interp::run` on each data set and
//! compared with the expected outputs:
//!
//! - floats: max abs error ≤ rel · max(1, max |ref|) with rel by the reference's dtype:
//!   f32 1e-4, f16 2e-3, bf16 / fp8 / fp4 1.6e-2 (one or two units in the last place of
//!   the types the references are rounded to); NaN matches NaN;
//! - integers and bools: exactly, and with the same dtype.
//!
//! dqc needs shapes, axes, sizes, scales and zero points at compile time; the conformance
//! models often feed them as runtime inputs. When the plain import fails, the case is
//! retried once per data set with every small input (at most [`SMALL`] elements, any
//! dtype) bound as a compile-time constant through `import_with_constants`.
//!
//! A failing case must be listed, with the reason, in `conformance_known_failures.txt`;
//! a listed case that passes fails the test too, so the list stays honest.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use dqc_frontend::onnx::OnnxModel;
use dqc_frontend::onnx::import::{Registry, import_with, import_with_constants};
use dqc_frontend::onnx::load_model;
use dqc_frontend::onnx::ops::default_registry;
use dqc_frontend::onnx::testdata::{
    Case, DataSet, compare, find_onnx_node_dir, load_case, parse_case_list,
};
use dqc_ir::{Graph, Tensor};

/// Inputs with at most this many elements are bound as constants on the retry.
const SMALL: usize = 64;

/// The known failures: case name → reason.
fn known_failures() -> BTreeMap<String, String> {
    parse_case_list(include_str!("conformance_known_failures.txt"))
}

/// Run `graph` on one data set and compare the outputs by name.
fn run_set(model: &OnnxModel, graph: &Graph, set: &DataSet) -> Result<(), String> {
    let mut inputs = Vec::new();
    for &id in graph.inputs() {
        let n = graph.node(id).name();
        let t = set
            .inputs
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| format!("data set has no input `{n}`"))?;
        inputs.push(t);
    }
    let outs = dqc_ir::interp::run(graph, &inputs).map_err(|e| format!("run: {e}"))?;
    let names: Vec<&str> = model.outputs().iter().map(|v| v.name.as_str()).collect();
    for (name, want) in &set.outputs {
        let k = names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| format!("the model has no output `{name}`"))?;
        let got = outs
            .get(k)
            .ok_or_else(|| format!("output {k} (`{name}`) missing"))?;
        if let Some(why) = compare(got, want) {
            return Err(format!("output `{name}`: {why}"));
        }
    }
    Ok(())
}

/// How a case passed.
enum Pass {
    /// Imported as is.
    Plain,
    /// Imported with small inputs bound as constants.
    Frozen,
}

/// Import and run one case; `Err` is why it fails.
fn run_case(dir: &Path, registry: &Registry) -> Result<Pass, String> {
    let case: Case = load_case(dir).map_err(|e| format!("load: {e}"))?;
    let plain_err = match import_with(&case.model, registry) {
        Ok(graph) => {
            for set in &case.data_sets {
                run_set(&case.model, &graph, set)?;
            }
            return Ok(Pass::Plain);
        }
        Err(e) => format!("import: {e}"),
    };
    let mut retried = false;
    for set in &case.data_sets {
        let frozen: BTreeMap<String, Tensor> = set
            .inputs
            .iter()
            .filter(|(_, t)| t.numel() <= SMALL)
            .cloned()
            .collect();
        if frozen.is_empty() {
            return Err(plain_err);
        }
        retried = true;
        let graph = import_with_constants(&case.model, registry, &frozen).map_err(|e| {
            format!("{plain_err}; with small inputs bound as constants: import: {e}")
        })?;
        run_set(&case.model, &graph, set)?;
    }
    if retried {
        Ok(Pass::Frozen)
    } else {
        Err(plain_err)
    }
}

/// A case directory with its op types, when they are all registered.
struct Selected {
    dir: PathBuf,
    name: String,
    ops: BTreeSet<String>,
}

/// The case directories whose models use only registered ops; also the corpus size.
fn supported_cases(root: &Path, registry: &Registry) -> (Vec<Selected>, usize) {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    dirs.retain(|d| d.join("model.onnx").is_file());
    dirs.sort();
    let total = dirs.len();
    let selected = dirs
        .into_iter()
        .filter_map(|dir| {
            let m = load_model(&dir.join("model.onnx")).ok()?;
            let all = m.nodes().all(|n| {
                let opset = m.opset_version(&n.domain).unwrap_or(0);
                registry.supports(&n.domain, &n.op_type, opset)
            });
            let ops = m.nodes().map(|n| n.op_type.clone()).collect();
            let name = dir.file_name()?.to_string_lossy().into_owned();
            all.then_some(Selected { dir, name, ops })
        })
        .collect();
    (selected, total)
}

#[test]
fn conformance_cases_of_registered_ops() {
    let Some(root) = find_onnx_node_dir(Path::new(env!("CARGO_MANIFEST_DIR"))) else {
        eprintln!("note: shared/onnx-node not found; test skipped");
        return;
    };
    let registry = default_registry();
    let known = known_failures();
    let (cases, total) = supported_cases(&root, &registry);
    let mut passed = 0usize;
    let mut frozen = 0usize;
    let mut failed = Vec::new();
    let mut unexpected = Vec::new();
    let mut fixed = Vec::new();
    // op type → (passed, failed) over the cases whose model contains it.
    let mut per_op: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for c in &cases {
        let result = std::panic::catch_unwind(|| run_case(&c.dir, &registry))
            .unwrap_or_else(|_| Err("panicked".to_string()));
        let ok = result.is_ok();
        for op in &c.ops {
            let e = per_op.entry(op.as_str()).or_default();
            if ok {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
        match result {
            Ok(how) => {
                passed += 1;
                frozen += usize::from(matches!(how, Pass::Frozen));
                if known.contains_key(&c.name) {
                    fixed.push(c.name.clone());
                }
            }
            Err(why) => {
                if !known.contains_key(&c.name) {
                    unexpected.push(format!("{} {why}", c.name));
                }
                failed.push(format!("{}: {why}", c.name));
            }
        }
    }
    println!("per op type (cases whose model contains it): passed/failed");
    for (op, (p, f)) in &per_op {
        println!("  {op:<28} {p:>4}/{f}");
    }
    for f in &failed {
        println!("  FAIL {f}");
    }
    let run = passed + failed.len();
    println!("conformance: {passed} passed, {} failed", failed.len());
    println!(
        "pass rate over cases of registered ops: {:.2}% ({passed} of {run}; {frozen} passed with \
         small inputs bound as constants; {} of the {total} corpus cases use unregistered ops \
         and are not run)",
        100.0 * passed as f64 / run.max(1) as f64,
        total - run
    );
    assert!(passed > 100, "only {passed} cases passed");
    assert!(
        unexpected.is_empty(),
        "{} failures not in conformance_known_failures.txt (add `name reason` lines or fix \
         them):\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
    assert!(
        fixed.is_empty(),
        "{} cases listed in conformance_known_failures.txt now pass; remove them:\n{}",
        fixed.len(),
        fixed.join("\n")
    );
    let stale: Vec<&String> = known
        .keys()
        .filter(|k| !cases.iter().any(|c| &c.name == *k))
        .collect();
    assert!(
        stale.is_empty(),
        "{} cases listed in conformance_known_failures.txt are not run (no such case, or it \
         uses unregistered ops); remove them:\n{stale:?}",
        stale.len()
    );
}
