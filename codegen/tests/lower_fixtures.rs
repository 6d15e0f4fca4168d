//! Every ONNX fixture under `models/fixtures/*/model.onnx` (with inputs and outputs)
//! imports, lowers, and the reference executor of the lowered program matches
//! onnxruntime's stored outputs within 1e-3 relative (max abs error / max abs reference).
//! Kernel counts are printed and bounded; the lowered DiT's listing is a snapshot.

mod lower_util;

use dqc_codegen::lower::{LowerOptions, Lowered, listing, lower};
use dqc_codegen::reference::{bind_symbols, run_program};
use dqc_frontend::onnx::import::import_with;
use dqc_frontend::onnx::load_model;
use dqc_frontend::onnx::ops::default_registry;
use dqc_ir::npz::read_npz;
use dqc_ir::{Graph, Tensor};
use std::path::{Path, PathBuf};

const REL_TOL: f32 = 1e-3;

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/fixtures")
}

fn import(dir: &Path) -> (Graph, Vec<String>) {
    let model = load_model(&dir.join("model.onnx")).unwrap_or_else(|e| panic!("load: {e}"));
    let mut g = import_with(&model, &default_registry()).unwrap_or_else(|e| panic!("import: {e}"));
    dqc_ir::verify::verify(&mut g).unwrap_or_else(|e| panic!("verify: {e}"));
    let outs = model.outputs().iter().map(|v| v.name.clone()).collect();
    (g, outs)
}

/// Lower and run one fixture; returns the lowering and the IR node count.
fn check(name: &str) -> Option<(Lowered, usize)> {
    let dir = fixtures_root().join(name);
    if !["model.onnx", "inputs.npz", "outputs.npz"]
        .iter()
        .all(|f| dir.join(f).is_file())
    {
        eprintln!("note: fixture {name} not present; skipped");
        return None;
    }
    let (g, out_names) = import(&dir);
    let given = read_npz(dir.join("inputs.npz")).unwrap();
    let want = read_npz(dir.join("outputs.npz")).unwrap();
    let inputs: Vec<Tensor> = g
        .inputs()
        .iter()
        .map(|&id| {
            let n = g.node(id).name();
            given
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, t)| t.clone())
                .unwrap_or_else(|| panic!("no input `{n}`"))
        })
        .collect();
    let lowered =
        lower(&g, &LowerOptions::default()).unwrap_or_else(|e| panic!("{name}: lower: {e}"));
    let bindings = bind_symbols(&lowered.program, &inputs).unwrap_or_else(|e| panic!("bind: {e}"));
    let got = run_program(&lowered.program, &lowered.weights, &inputs, &bindings)
        .unwrap_or_else(|e| panic!("{name}: reference: {e}"));
    assert_eq!(got.len(), out_names.len());
    for (o, t) in out_names.iter().zip(&got) {
        let (_, w) = want
            .iter()
            .find(|(k, _)| k == o)
            .unwrap_or_else(|| panic!("outputs.npz has no `{o}`"));
        let (a, b) = (t.to_f32_vec(), w.to_f32_vec());
        assert_eq!(t.shape(), w.shape(), "{name}: `{o}` shape");
        let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-12);
        let err = a
            .iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        let rel = err / scale;
        assert!(rel <= REL_TOL, "{name}: `{o}` rel error {rel:e}");
        println!("{name}: `{o}` rel error {rel:.2e}");
    }
    let nodes = g.node_count();
    println!(
        "{name}: {nodes} IR nodes → {} kernels, {} weights, arena {} bytes",
        lowered.program.kernels.len(),
        lowered.weights.len(),
        lowered.peak_bytes
    );
    Some((lowered, nodes))
}

macro_rules! fixture_tests {
    ($($t:ident),*) => {$(
        #[test]
        fn $t() {
            if let Some((l, nodes)) = check(stringify!($t)) {
                assert!(l.program.kernels.len() < nodes, "fusion removed nothing");
            }
        }
    )*};
}

fixture_tests!(
    digits_dit,
    flux,
    gpt2,
    gpt2_torchscript,
    llama,
    mamba,
    pixart_torchscript_static,
    sd3
);

#[test]
fn dit() {
    let Some((l, nodes)) = check("dit") else {
        return;
    };
    // The fused DiT has far fewer kernels than IR nodes.
    assert!(
        l.program.kernels.len() * 3 < nodes,
        "{} kernels for {nodes} nodes",
        l.program.kernels.len()
    );
    insta::assert_snapshot!("dit_lowered_listing", listing(&l.program));
}
