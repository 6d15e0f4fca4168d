//! ONNX backend node conformance cases through the whole compiled CPU pipeline.
//!
//! Every case of `shared/onnx-node` that the interpreter passes (the cases
//! `frontend/tests/import_conformance.rs` runs, minus its known failures) is imported
//! plainly, or on a failed import once per data set with inputs of at most [`SMALL`]
//! elements bound as constants — unlike import_conformance, only as many as the import
//! needs (the smallest such set), so that data tensors stay runtime inputs the compiled
//! kernels compute on (a case whose every input ends up constant is counted as "folded": the
//! passes computed it and the program only copies constants). It is then compiled as `dqc compile --target cpu`
//! does (`dqc::driver::compile_graph`: passes, lowering, memory planning), written to plan
//! bytes, loaded back (all validation), run by a runtime `Session` (Cranelift kernels) and
//! compared with the expected outputs under import_conformance's tolerances:
//!
//! - floats: max abs error ≤ rel · max(1, max |ref|) with rel by the reference's dtype:
//!   f32 1e-4, f16 2e-3, bf16 / fp8 / fp4 1.6e-2; NaN matches NaN;
//! - integers and bools: exactly, and with the same dtype.
//!
//! A case that fails to compile ("lowered-failed") or runs but mismatches or errors
//! ("mismatched") must be listed with the reason in `conformance_cpu_known_failures.txt`;
//! a listed case that passes fails the test too, so the list stays honest.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use dqc::driver::{CompileOptions, compile_graph, sha256_hex};
use dqc_frontend::onnx::OnnxModel;
use dqc_frontend::onnx::import::{Registry, import_with, import_with_constants};
use dqc_frontend::onnx::load_model;
use dqc_frontend::onnx::ops::default_registry;
use dqc_frontend::onnx::testdata::{
    Case, DataSet, compare, find_onnx_node_dir, load_case, parse_case_list,
};
use dqc_ir::{DType, Graph, Target, Tensor};
use dqc_runtime::Session;
use dqc_runtime::plan::{Plan, plan_bytes};

/// Inputs with at most this many elements are bound as constants on the retry (as in
/// import_conformance).
const SMALL: usize = 64;

/// How a case fails.
enum Failure {
    /// Import, passes or lowering refused it (the interpreter runs it).
    Lower(String),
    /// It compiled, but the run failed or an output differs.
    Mismatch(String),
}

/// Compile `graph` for the CPU, round-trip the plan, run it on `set` and compare.
/// Returns true if the graph has no inputs (everything was folded into constants).
fn compile_and_run(
    model: &OnnxModel,
    sha: &str,
    graph: Graph,
    set: &DataSet,
) -> Result<bool, Failure> {
    let input_names: Vec<String> = graph
        .inputs()
        .iter()
        .map(|&id| graph.node(id).name().to_string())
        .collect();
    let compiled = compile_graph(graph, sha.to_string(), &CompileOptions::new(Target::cpu()))
        .map_err(|e| Failure::Lower(format!("compile: {e:#}")))?;
    let bytes = plan_bytes(&compiled.parts, &compiled.lowered.weights, &[])
        .map_err(|e| Failure::Lower(format!("plan: {e}")))?;
    let plan = Plan::from_bytes("case.dqcplan", &bytes)
        .map_err(|e| Failure::Lower(format!("load: {e}")))?;
    let session = Session::new(&plan).map_err(|e| Failure::Lower(format!("session: {e}")))?;
    let mut inputs: Vec<(&str, &Tensor)> = Vec::new();
    for n in &input_names {
        let t = set
            .inputs
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, t)| t)
            .ok_or_else(|| Failure::Mismatch(format!("data set has no input `{n}`")))?;
        inputs.push((n.as_str(), t));
    }
    let outs = session
        .run(&inputs)
        .map_err(|e| Failure::Mismatch(format!("run: {e}")))?;
    let names: Vec<&str> = model.outputs().iter().map(|v| v.name.as_str()).collect();
    for (name, want) in &set.outputs {
        let k = names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| Failure::Mismatch(format!("the model has no output `{name}`")))?;
        let (_, got) = outs
            .get(k)
            .ok_or_else(|| Failure::Mismatch(format!("output {k} (`{name}`) missing")))?;
        if let Some(why) = compare(got, want) {
            return Err(Failure::Mismatch(format!("output `{name}`: {why}")));
        }
    }
    Ok(input_names.is_empty())
}

/// Import, compile and run one case on every data set; true if every data set's graph
/// was folded into constants.
fn run_case(dir: &Path, registry: &Registry) -> Result<bool, Failure> {
    let case: Case = load_case(dir).map_err(|e| Failure::Lower(format!("load: {e}")))?;
    let bytes = std::fs::read(dir.join("model.onnx"))
        .map_err(|e| Failure::Lower(format!("read model: {e}")))?;
    let sha = sha256_hex(&bytes);
    let mut folded = true;
    if let Ok(graph) = import_with(&case.model, registry) {
        for set in &case.data_sets {
            folded &= compile_and_run(&case.model, &sha, graph.clone(), set)?;
        }
        return Ok(folded);
    }
    for set in &case.data_sets {
        let graph = import_frozen(&case.model, registry, set)?;
        folded &= compile_and_run(&case.model, &sha, graph, set)?;
    }
    Ok(folded)
}

/// Import with as few small inputs bound as constants as it takes: every subset of the
/// small inputs (at most 2^8 of them), fewest inputs first, then fewest elements, so that
/// data tensors stay runtime inputs and the compiled program computes them instead of
/// constant folding.
fn import_frozen(model: &OnnxModel, registry: &Registry, set: &DataSet) -> Result<Graph, Failure> {
    let small: Vec<&(String, Tensor)> = set
        .inputs
        .iter()
        .filter(|(_, t)| t.numel() <= SMALL)
        .take(8)
        .collect();
    let mut subsets: Vec<u32> = (1..1u32 << small.len()).collect();
    let cost = |m: u32| {
        let numel: usize = (0..small.len())
            .filter(|i| m >> i & 1 == 1)
            .map(|i| small[i].1.numel())
            .sum();
        (m.count_ones(), numel, m)
    };
    subsets.sort_by_key(|&m| cost(m));
    let mut last = String::from("no input small enough to bind");
    for m in subsets {
        let frozen: BTreeMap<String, Tensor> = (0..small.len())
            .filter(|i| m >> i & 1 == 1)
            .map(|i| small[i].clone())
            .collect();
        match import_with_constants(model, registry, &frozen) {
            Ok(g) => return Ok(g),
            Err(e) => last = e.to_string(),
        }
    }
    Err(Failure::Lower(format!("import with constants: {last}")))
}

/// The case directories whose models use only registered ops, with their names.
fn supported_cases(root: &Path, registry: &Registry) -> Vec<(PathBuf, String, BTreeSet<String>)> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    dirs.retain(|d| d.join("model.onnx").is_file());
    dirs.sort();
    dirs.into_iter()
        .filter_map(|dir| {
            let m = load_model(&dir.join("model.onnx")).ok()?;
            let all = m.nodes().all(|n| {
                let opset = m.opset_version(&n.domain).unwrap_or(0);
                registry.supports(&n.domain, &n.op_type, opset)
            });
            let ops = m.nodes().map(|n| n.op_type.clone()).collect();
            let name = dir.file_name()?.to_string_lossy().into_owned();
            all.then_some((dir, name, ops))
        })
        .collect()
}

#[test]
fn conformance_cases_through_the_cpu_pipeline() {
    let Some(root) = find_onnx_node_dir(Path::new(env!("CARGO_MANIFEST_DIR"))) else {
        eprintln!("note: shared/onnx-node not found; test skipped");
        return;
    };
    let start = Instant::now();
    let registry = default_registry();
    let interp_failures = parse_case_list(include_str!(
        "../frontend/tests/conformance_known_failures.txt"
    ));
    let known = parse_case_list(include_str!("conformance_cpu_known_failures.txt"));
    let cases: Vec<_> = supported_cases(&root, &registry)
        .into_iter()
        .filter(|(_, name, _)| !interp_failures.contains_key(name))
        .collect();
    let (mut passed, mut lower_failed, mut mismatched) = (0usize, Vec::new(), Vec::new());
    let mut folded = Vec::new();
    let (mut unexpected, mut fixed) = (Vec::new(), Vec::new());
    // op type → (passed, failed) over the cases whose model contains it.
    let mut per_op: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (dir, name, ops) in &cases {
        let result = std::panic::catch_unwind(|| run_case(dir, &registry))
            .unwrap_or_else(|_| Err(Failure::Mismatch("panicked".to_string())));
        for op in ops {
            let e = per_op.entry(op.as_str()).or_default();
            if result.is_ok() {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
        let why = match result {
            Ok(all_constant) => {
                passed += 1;
                if all_constant {
                    folded.push(name.as_str());
                }
                if known.contains_key(name) {
                    fixed.push(name.clone());
                }
                continue;
            }
            Err(Failure::Lower(why)) => {
                lower_failed.push(format!("{name} {why}"));
                why
            }
            Err(Failure::Mismatch(why)) => {
                mismatched.push(format!("{name} {why}"));
                why
            }
        };
        if !known.contains_key(name) {
            unexpected.push(format!("{name} {why}"));
        }
    }
    println!("per op type (cases whose model contains it): passed/failed");
    for (op, (p, f)) in &per_op {
        if *f > 0 {
            println!("  {op:<28} {p:>4}/{f}");
        }
    }
    println!("folded into constants: {}", folded.join(" "));
    for f in &lower_failed {
        println!("  LOWER-FAILED {f}");
    }
    for f in &mismatched {
        println!("  MISMATCHED {f}");
    }
    println!(
        "compiled CPU conformance: {} cases the interpreter passes: {passed} passed ({} of \
         them folded into constants), {} lowered-failed, {} mismatched ({:.1} s)",
        cases.len(),
        folded.len(),
        lower_failed.len(),
        mismatched.len(),
        start.elapsed().as_secs_f64()
    );
    assert!(passed > 100, "only {passed} cases passed");
    assert!(
        unexpected.is_empty(),
        "{} failures not in conformance_cpu_known_failures.txt (add `name reason` lines or \
         fix them):\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
    assert!(
        fixed.is_empty(),
        "{} cases listed in conformance_cpu_known_failures.txt now pass; remove them:\n{}",
        fixed.len(),
        fixed.join("\n")
    );
    let stale: Vec<&String> = known
        .keys()
        .filter(|k| !cases.iter().any(|(_, n, _)| n == *k))
        .collect();
    assert!(
        stale.is_empty(),
        "{} cases listed in conformance_cpu_known_failures.txt are not run; remove them:\n\
         {stale:?}",
        stale.len()
    );
}

/// The lowerings of the block quantization schemes, resize and reflect pad through the same
/// path (compile, plan bytes with their lookup tables and non-finite literals, Session),
/// compared exactly with the interpreter.
#[test]
fn block_quantization_resize_and_pad_through_a_plan() {
    let src = "graph @g(%x: f32[2,40], %t: f32[]) -> (fp4e2m1[2,40], f8e4m3[2,3], f32[2,40], u8[2,2], f32[2,40], f32[2,44], f32[4,80]) {
      %q, %b = quantize(%x, %t) {dtype = fp4e2m1, scheme = nvfp4(axis = -1), has_zero_point = false}
      %d = dequantize(%q, %b, %t) {scheme = nvfp4(axis = -1), has_zero_point = false, out = f32}
      %mq, %ms = quantize(%x) {dtype = f8e4m3, scheme = mx(axis = -1), has_zero_point = false}
      %md = dequantize(%mq, %ms) {scheme = mx(axis = -1), has_zero_point = false, out = f32}
      %p = pad(%x) {pads = [0, 1, 0, 3], mode = reflect}
      %r = resize(%x) {size = [4,80], mode = nearest(round_prefer_ceil), coord = half_pixel}
      return %q, %b, %d, %ms, %md, %p, %r
    }";
    let mut graph = dqc_ir::text::parse(src, None).expect("parse");
    dqc_ir::verify::verify(&mut graph).expect("verify");
    let mut xv: Vec<f32> = (0..80)
        .map(|i| ((i * 37 % 41) as f32 - 20.0) / 3.0)
        .collect();
    xv[7] = f32::NAN;
    xv[50] = f32::INFINITY;
    let x = Tensor::from_f32(DType::F32, vec![2, 40], &xv).expect("x");
    let t = Tensor::from_f32(DType::F32, vec![], &[0.5]).expect("t");
    let want = dqc_ir::interp::run(&graph, &[x.clone(), t.clone()]).expect("interp");
    let compiled =
        compile_graph(graph, "0".repeat(64), &CompileOptions::new(Target::cpu())).expect("compile");
    let bytes = plan_bytes(&compiled.parts, &compiled.lowered.weights, &[]).expect("plan");
    let plan = Plan::from_bytes("t.dqcplan", &bytes).expect("load");
    let session = Session::new(&plan).expect("session");
    let got = session.run(&[("x", &x), ("t", &t)]).expect("run");
    assert_eq!(got.len(), want.len());
    for (i, ((name, g), w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.dtype(), w.dtype(), "output {i} `{name}`");
        let (gv, wv) = (g.to_f32_vec(), w.to_f32_vec());
        for (j, (a, b)) in gv.iter().zip(&wv).enumerate() {
            assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "output {i} `{name}` element {j}: {a}, expected {b}"
            );
        }
    }
}
