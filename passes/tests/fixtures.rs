//! The standard pipeline on the imported ONNX fixtures and on the DiT built by
//! `dqc_models::dit`: outputs still match onnxruntime's stored ones (1e-4 relative), and
//! the op histogram before/after is a snapshot (it shows what was recognized).

mod common;

use std::path::{Path, PathBuf};

use dqc_ir::npz::read_npz;
use dqc_ir::{Graph, Tensor};
use dqc_passes::{PassOptions, Pipeline};

use common::{histogram, histogram_diff, rel_error};

const REL_TOL: f32 = 1e-4;

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/fixtures")
}

fn run_named(g: &Graph, given: &[(String, Tensor)]) -> Vec<Tensor> {
    let inputs: Vec<Tensor> = g
        .inputs()
        .iter()
        .map(|&id| {
            let name = g.node(id).name();
            given
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, t)| t.clone())
                .unwrap_or_else(|| panic!("no input `{name}`"))
        })
        .collect();
    dqc_ir::interp::run(g, &inputs).unwrap_or_else(|e| panic!("run: {e}"))
}

/// Import, run the pipeline, compare with onnxruntime; the histogram diff.
fn check(name: &str) -> String {
    let dir = fixtures_root().join(name);
    let model = dqc_frontend::onnx::load_model(&dir.join("model.onnx"))
        .unwrap_or_else(|e| panic!("{name}: load: {e}"));
    let out_names: Vec<String> = model.outputs().iter().map(|v| v.name.clone()).collect();
    let mut g =
        dqc_frontend::onnx::import_model(&model).unwrap_or_else(|e| panic!("{name}: import: {e}"));
    let before = histogram(&g);
    let report = Pipeline::standard()
        .run(&mut g, &PassOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let after = histogram(&g);
    let given = read_npz(dir.join("inputs.npz")).unwrap_or_else(|e| panic!("{e}"));
    let want = read_npz(dir.join("outputs.npz")).unwrap_or_else(|e| panic!("{e}"));
    let outs = run_named(&g, &given);
    assert_eq!(outs.len(), out_names.len(), "{name}: output count");
    for (out, got) in out_names.iter().zip(&outs) {
        let (_, w) = want
            .iter()
            .find(|(k, _)| k == out)
            .unwrap_or_else(|| panic!("{name}: outputs.npz has no `{out}`"));
        let rel = rel_error(got, w).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(rel <= REL_TOL, "{name}: `{out}` relative error {rel:e}");
    }
    // Everything the exporter decomposed was recognized: none of the pieces are left.
    for op in [
        "softmax",
        "tanh",
        "erf",
        "sigmoid",
        "reduce_mean",
        "pow",
        "sqrt",
        "reciprocal",
    ] {
        assert_eq!(after.get(op), None, "{name}: {op} left after the pipeline");
    }
    // Every adaLN LayerNorm feeds a modulate (the DiT family; the LLMs have none).
    if [
        "dit",
        "sd3",
        "flux",
        "pixart_torchscript_static",
        "digits_dit",
    ]
    .contains(&name)
    {
        assert_eq!(
            after.get("modulate"),
            after.get("layer_norm"),
            "{name}: modulate count"
        );
    }
    let passes: Vec<String> = report
        .passes
        .iter()
        .map(|p| format!("{}: changed={}", p.name, p.changed))
        .collect();
    format!("{}\n{}", passes.join("\n"), histogram_diff(&before, &after))
}

macro_rules! fixture_tests {
    ($($t:ident),*) => {$(
        #[test]
        fn $t() {
            if !fixtures_root().join(stringify!($t)).join("model.onnx").is_file() {
                eprintln!("note: fixture {} not found; skipped", stringify!($t));
                return;
            }
            insta::assert_snapshot!(check(stringify!($t)));
        }
    )*};
}

fixture_tests!(
    dit,
    sd3,
    flux,
    gpt2,
    gpt2_torchscript,
    llama,
    mamba,
    pixart_torchscript_static,
    digits_dit
);

/// The DiT built by `dqc_models::dit` already uses the fused ops; the pipeline keeps
/// every one of them and the outputs.
#[test]
fn models_dit_keeps_its_fused_ops() {
    let cfg = dqc_models::dit::DitConfig::tiny();
    let original = dqc_models::dit::build(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let mut g = original.clone();
    Pipeline::standard()
        .run(&mut g, &PassOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let (b, a) = (histogram(&original), histogram(&g));
    for op in ["layer_norm", "modulate", "attention", "gelu"] {
        assert!(b.get(op).copied().unwrap_or(0) > 0, "the DiT has no {op}");
        assert_eq!(b.get(op), a.get(op), "{op} count changed");
    }
    let mut rng = common::Rng::new(7);
    let mut inputs = common::random_inputs(&original, &mut rng).unwrap_or_else(|e| panic!("{e}"));
    // Class labels must be valid rows of the embedding table.
    if let Some(y) = inputs.last_mut() {
        let vals = vec![0i64; y.numel()];
        *y = Tensor::from_i64(y.dtype(), y.shape().to_vec(), &vals)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    common::same_outputs(&original, &g, &inputs, 1e-5).unwrap_or_else(|e| panic!("{e}"));
    insta::assert_snapshot!(histogram_diff(&b, &a));
}
