//! End to end on the CPU: every ONNX fixture (`models/fixtures/*`) is compiled with
//! `--target cpu` (passes, lowering, memory planning), written as a plan file, loaded back
//! (all validation), run by a runtime `Session` on the fixture's `inputs.npz`, and every
//! output is compared with onnxruntime's stored `outputs.npz`: max abs error / max abs
//! reference ≤ 1e-3. The DiT fixture's kernel list is a golden snapshot.

use std::path::{Path, PathBuf};

use dqc::driver::{CompileOptions, compile_file};
use dqc_ir::npz::read_npz;
use dqc_ir::{Target, Tensor};
use dqc_runtime::Session;
use dqc_runtime::plan::{Plan, write_plan};

const REL_TOL: f32 = 1e-3;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models/fixtures")
        .join(name)
}

/// `max |got − want| / max |want|`.
fn rel_err(got: &Tensor, want: &Tensor) -> Result<f32, String> {
    if got.shape() != want.shape() {
        return Err(format!(
            "shape {:?}, expected {:?}",
            got.shape(),
            want.shape()
        ));
    }
    let (g, w) = (got.to_f32_vec(), want.to_f32_vec());
    let scale = w.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
    let err = g
        .iter()
        .zip(&w)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    if err.is_nan() || g.iter().any(|v| v.is_nan()) != w.iter().any(|v| v.is_nan()) {
        return Err("NaN in the output".into());
    }
    Ok(err / scale)
}

/// Compile, write, load, run, compare. Returns the kernel count.
fn check(name: &str) -> usize {
    let dir = fixture(name);
    let compiled = compile_file(&dir.join("model.onnx"), &CompileOptions::new(Target::cpu()))
        .unwrap_or_else(|e| panic!("{name}: compile: {e:#}"));
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("model.dqcplan");
    write_plan(&path, &compiled.parts, &compiled.lowered.weights, &[])
        .unwrap_or_else(|e| panic!("{name}: write plan: {e}"));
    let plan = Plan::load(&path).unwrap_or_else(|e| panic!("{name}: load plan: {e}"));
    let session = Session::new(&plan).unwrap_or_else(|e| panic!("{name}: session: {e}"));
    let inputs = read_npz(dir.join("inputs.npz")).expect("inputs.npz");
    let want = read_npz(dir.join("outputs.npz")).expect("outputs.npz");
    let got = session
        .run_named(&inputs)
        .unwrap_or_else(|e| panic!("{name}: run: {e}"));
    assert_eq!(got.len(), want.len(), "{name}: output count");
    for (n, w) in &want {
        let g = &got
            .iter()
            .find(|(gn, _)| gn == n)
            .unwrap_or_else(|| panic!("{name}: no output `{n}`"))
            .1;
        let e = rel_err(g, w).unwrap_or_else(|m| panic!("{name}: output `{n}`: {m}"));
        assert!(
            e <= REL_TOL,
            "{name}: output `{n}`: relative error {e:.3e} > {REL_TOL:e}"
        );
        eprintln!("{name}: output `{n}`: relative error {e:.2e}");
    }
    compiled.lowered.program.kernels.len()
}

macro_rules! fixture_tests {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(#[test] fn $test() { check($name); })*
        const TESTED: &[&str] = &[$($name),*];
    };
}

fixture_tests! {
    digits_dit => "digits_dit",
    flux => "flux",
    gpt2 => "gpt2",
    gpt2_torchscript => "gpt2_torchscript",
    llama => "llama",
    mamba => "mamba",
    pixart_torchscript_static => "pixart_torchscript_static",
    sd3 => "sd3",
}

#[test]
fn every_fixture_has_a_test() {
    let mut names: Vec<String> = std::fs::read_dir(fixture(""))
        .expect("models/fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|d| {
            ["model.onnx", "inputs.npz", "outputs.npz"]
                .iter()
                .all(|f| d.join(f).is_file())
        })
        .filter_map(|d| Some(d.file_name()?.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    let mut tested: Vec<String> = TESTED.iter().map(|s| s.to_string()).collect();
    tested.push("dit".into());
    tested.sort();
    assert_eq!(names, tested, "fixtures without an end-to-end test");
}

/// The DiT fixture: runs correctly, and its fused kernel list (after recognition and
/// fusion) is a golden snapshot — every LayerNorm, GELU, attention and modulate shows up
/// inside a kernel rather than as decomposed pieces.
#[test]
fn dit_kernels_golden() {
    let kernels = check("dit");
    let compiled = compile_file(
        &fixture("dit").join("model.onnx"),
        &CompileOptions::new(Target::cpu()),
    )
    .expect("compile");
    let listing = dqc_codegen::lower::listing(&compiled.lowered.program);
    let ops = dqc_ir::text::print(&compiled.graph);
    let count = |op: &str| ops.matches(&format!("= {op}(")).count();
    let summary = format!(
        "IR nodes before passes: {}\nkernels after fusion: {kernels}\nrecognized: layer_norm {}, gelu {}, attention {}, modulate {}, silu {}\n\n{listing}",
        compiled.ir_nodes_before,
        count("layer_norm"),
        count("gelu"),
        count("attention"),
        count("modulate"),
        count("silu"),
    );
    insta::assert_snapshot!("dit_cpu_kernels", summary);
}
