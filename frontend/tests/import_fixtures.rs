//! Real exports (`models/fixtures/*`): each fixture with `model.onnx`, `inputs.npz` and
//! `outputs.npz` is imported, verified, run in the interpreter on `inputs.npz` and every
//! output is compared with onnxruntime's stored one: max abs error / max abs reference
//! ≤ 1e-4. One test per fixture; a fixture that exists and fails (a missing converter
//! included) fails its test, and a fixture directory that is not listed here fails
//! `every_fixture_has_a_test`. `digits_dit` also reruns one step of its stored DDIM
//! trajectory.

use std::path::{Path, PathBuf};

use dqc_frontend::onnx::import::import_with;
use dqc_frontend::onnx::load_model;
use dqc_frontend::onnx::ops::default_registry;
use dqc_ir::npz::read_npz;
use dqc_ir::{DType, Graph, Tensor};

/// The fixtures with a test below.
const TESTED: [&str; 9] = [
    "digits_dit",
    "dit",
    "flux",
    "gpt2",
    "gpt2_torchscript",
    "llama",
    "mamba",
    "pixart_torchscript_static",
    "sd3",
];

/// Largest accepted max abs error / max abs reference.
const REL_TOL: f32 = 1e-4;

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/fixtures")
}

/// The fixture directories that hold a complete test (model, inputs and outputs).
fn complete_fixtures() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_root())
        .map(|r| {
            r.filter_map(|e| e.ok().map(|e| e.path()))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .filter(|d| {
            ["model.onnx", "inputs.npz", "outputs.npz"]
                .iter()
                .all(|f| d.join(f).is_file())
        })
        .filter_map(|d| Some(d.file_name()?.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names
}

/// Import and verify the fixture's model.
fn import(dir: &Path) -> Result<(Graph, Vec<String>), String> {
    let registry = default_registry();
    let model = load_model(&dir.join("model.onnx")).map_err(|e| format!("load: {e}"))?;
    let mut missing: Vec<String> = model
        .nodes()
        .filter(|n| {
            let opset = model.opset_version(&n.domain).unwrap_or(0);
            !registry.supports(&n.domain, &n.op_type, opset)
        })
        .map(|n| n.op_type.clone())
        .collect();
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        return Err(format!("no converter for {}", missing.join(", ")));
    }
    let mut g = import_with(&model, &registry).map_err(|e| format!("import: {e}"))?;
    dqc_ir::verify::verify(&mut g).map_err(|e| format!("verify: {e}"))?;
    let outputs = model.outputs().iter().map(|v| v.name.clone()).collect();
    Ok((g, outputs))
}

/// `max |got − want| / max |want|` if the shapes agree.
fn rel_error(got: &Tensor, want: &Tensor) -> Result<f32, String> {
    if got.shape() != want.shape() {
        return Err(format!(
            "shape {:?}, expected {:?}",
            got.shape(),
            want.shape()
        ));
    }
    let (a, b) = (got.to_f32_vec(), want.to_f32_vec());
    let scale = b.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let err = a
        .iter()
        .zip(&b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    if err == 0.0 {
        return Ok(0.0);
    }
    Ok(err / scale)
}

/// Run `g` on the named inputs; its outputs in order.
fn run_named(g: &Graph, given: &[(String, Tensor)]) -> Result<Vec<Tensor>, String> {
    let mut inputs = Vec::new();
    for &id in g.inputs() {
        let name = g.node(id).name();
        let t = given
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| format!("no input `{name}`"))?;
        inputs.push(t);
    }
    dqc_ir::interp::run(g, &inputs).map_err(|e| format!("run: {e}"))
}

/// Import, verify and run one fixture and compare with onnxruntime.
fn check(name: &str) -> Result<String, String> {
    let dir = fixtures_root().join(name);
    let (g, out_names) = import(&dir)?;
    let given = read_npz(dir.join("inputs.npz")).map_err(|e| e.to_string())?;
    let want = read_npz(dir.join("outputs.npz")).map_err(|e| e.to_string())?;
    let outs = run_named(&g, &given)?;
    if outs.len() != out_names.len() {
        return Err(format!(
            "{} outputs, the model has {}",
            outs.len(),
            out_names.len()
        ));
    }
    let mut report = Vec::new();
    for (out, got) in out_names.iter().zip(&outs) {
        let (_, w) = want
            .iter()
            .find(|(k, _)| k == out)
            .ok_or_else(|| format!("outputs.npz has no `{out}`"))?;
        let rel = rel_error(got, w).map_err(|e| format!("`{out}`: {e}"))?;
        if rel.is_nan() || rel > REL_TOL {
            return Err(format!(
                "`{out}`: max abs error / max abs reference = {rel:e} > {REL_TOL:e}"
            ));
        }
        report.push(format!("`{out}` rel error {rel:.2e}"));
    }
    Ok(format!("{} nodes, {}", g.node_count(), report.join(", ")))
}

fn check_fixture(name: &str) {
    if !fixtures_root().join(name).is_dir() {
        eprintln!("note: models/fixtures/{name} not found; test skipped");
        return;
    }
    match check(name) {
        Ok(s) => println!("{name}: {s}"),
        Err(e) => panic!("fixture {name}: {e}"),
    }
}

macro_rules! fixture_tests {
    ($($t:ident),*) => {$(
        #[test]
        fn $t() {
            check_fixture(stringify!($t));
        }
    )*};
}

fixture_tests!(
    digits_dit,
    dit,
    flux,
    gpt2,
    gpt2_torchscript,
    llama,
    mamba,
    pixart_torchscript_static,
    sd3
);

#[test]
fn every_fixture_has_a_test() {
    let untested: Vec<String> = complete_fixtures()
        .into_iter()
        .filter(|n| !TESTED.contains(&n.as_str()))
        .collect();
    assert!(
        untested.is_empty(),
        "fixtures without a test in import_fixtures.rs: {untested:?}"
    );
}

/// Row `i` of the leading axis of `t`.
fn row(t: &Tensor, i: usize) -> Tensor {
    let shape = t.shape();
    let inner: usize = shape.iter().skip(1).map(|&d| d as usize).product();
    let v = t.to_f32_vec();
    let part = v.get(i * inner..(i + 1) * inner).unwrap_or_default();
    Tensor::from_f32(DType::F32, shape[1..].to_vec(), part).unwrap_or_else(|e| panic!("{e}"))
}

/// One step of the stored DDIM run of `digits_dit` (batch 8) against onnxruntime's ε.
#[test]
fn digits_dit_trajectory_step() {
    let dir = fixtures_root().join("digits_dit");
    if !dir.join("trajectory.npz").is_file() {
        eprintln!("note: digits_dit/trajectory.npz not found; test skipped");
        return;
    }
    let (g, _) = import(&dir).unwrap_or_else(|e| panic!("digits_dit: {e}"));
    let traj = read_npz(dir.join("trajectory.npz")).unwrap_or_else(|e| panic!("{e}"));
    let get = |k: &str| -> &Tensor {
        traj.iter()
            .find(|(n, _)| n == k)
            .map(|(_, t)| t)
            .unwrap_or_else(|| panic!("trajectory.npz has no `{k}`"))
    };
    // A middle step: neither pure noise nor the almost clean end.
    let step = 25;
    let given = vec![
        ("x".to_string(), row(get("x"), step)),
        ("t".to_string(), row(get("t"), step)),
        ("y".to_string(), get("y").clone()),
    ];
    let outs = run_named(&g, &given).unwrap_or_else(|e| panic!("digits_dit step {step}: {e}"));
    let got = outs.first().unwrap_or_else(|| panic!("no output"));
    let rel = rel_error(got, &row(get("eps"), step)).unwrap_or_else(|e| panic!("{e}"));
    println!("digits_dit trajectory step {step}: rel error {rel:.2e}");
    assert!(rel <= REL_TOL, "step {step}: rel error {rel:e}");
}
