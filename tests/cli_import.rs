//! `dqc import`, and `inspect`/`eval` on `.onnx` models, end to end. Uses the ONNX
//! conformance cases of `shared/onnx-node` next to the checkout (skipped with a note when
//! absent).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dqc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dqc"))
        .args(args)
        .output()
        .expect("the dqc binary runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn case(name: &str) -> Option<PathBuf> {
    let root =
        dqc_frontend::onnx::testdata::find_onnx_node_dir(Path::new(env!("CARGO_MANIFEST_DIR")))?;
    let p = root.join(name).join("model.onnx");
    p.is_file().then_some(p)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn import_inspect_and_eval_an_onnx_model() {
    let Some(model) = case("test_gelu_tanh_1_expanded") else {
        eprintln!("note: shared/onnx-node not found; test skipped");
        return;
    };
    let o = dqc(&["import", s(&model)]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "import failed: {err}");
    assert!(out.contains("graph @") && out.contains("tanh("), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let dqc_file = dir.path().join("gelu.dqc");
    let o = dqc(&["import", s(&model), "-o", s(&dqc_file)]);
    assert!(o.status.success(), "import -o failed: {}", text(&o).1);
    let o = dqc(&["inspect", "--summary", s(&dqc_file)]);
    assert!(
        o.status.success(),
        "inspect of the written file failed: {}",
        text(&o).1
    );

    let o = dqc(&["inspect", "--summary", s(&model)]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "inspect failed: {err}");
    assert!(out.contains("//   onnx ops: "), "{out}");
    assert!(out.contains("Tanh 1"), "{out}");
    assert!(out.contains("//   ops: "), "{out}");

    let inputs = dir.path().join("in.npz");
    let outputs = dir.path().join("out.npz");
    let o = dqc(&["make-inputs", s(&model), "-o", s(&inputs)]);
    assert!(o.status.success(), "make-inputs failed: {}", text(&o).1);
    let o = dqc(&[
        "eval",
        s(&model),
        "--inputs",
        s(&inputs),
        "--outputs",
        s(&outputs),
    ]);
    assert!(o.status.success(), "eval failed: {}", text(&o).1);
    assert!(outputs.is_file());
}

#[test]
fn unsupported_onnx_op_is_a_clear_error() {
    let Some(model) = case("test_bitshift_left_uint8") else {
        eprintln!("note: shared/onnx-node not found; test skipped");
        return;
    };
    let o = dqc(&["import", s(&model)]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("operator `BitShift`") && err.contains("not supported"),
        "{err}"
    );
}
