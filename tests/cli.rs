//! End-to-end tests of the `dqc` binary: the demo path works, and bad input gives one
//! clear error and a non-zero exit, never a panic.

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

fn assert_clean_failure(o: &Output, needle: &str) {
    let (out, err) = text(o);
    assert!(!o.status.success(), "expected failure, got success: {out}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.contains(needle), "stderr lacks `{needle}`: {err}");
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// Write `src` to a temporary file named `name` and run `dqc inspect` on it.
fn inspect_source(name: &str, src: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join(name);
    std::fs::write(&f, src).unwrap();
    dqc(&["inspect", p(&f)])
}

#[test]
fn new_model_inspect_make_inputs_eval() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.dqc");
    let o = dqc(&["new-model", "dit", "--preset", "tiny", "-o", p(&model)]);
    assert!(o.status.success(), "{:?}", text(&o));
    let o = dqc(&["inspect", p(&model), "--summary"]);
    let (out, _) = text(&o);
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(out.contains("attention"), "{out}");
    assert!(out.contains("layer_norm"), "{out}");

    let inputs = dir.path().join("in.npz");
    let o = dqc(&[
        "make-inputs",
        p(&model),
        "--batch",
        "2",
        "--seed",
        "1",
        "-o",
        p(&inputs),
    ]);
    assert!(o.status.success(), "{:?}", text(&o));

    let outputs = dir.path().join("out.npz");
    let o = dqc(&[
        "eval",
        p(&model),
        "--inputs",
        p(&inputs),
        "--outputs",
        p(&outputs),
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    let outs = dqc_ir::npz::read_npz(&outputs).unwrap();
    assert_eq!(outs.len(), 1);
    let y = &outs[0].1;
    assert_eq!(y.shape()[0], 2);
    assert!(y.to_f32_vec().iter().all(|v| v.is_finite()));

    // Same inputs, same outputs: the interpreter is deterministic.
    let outputs2 = dir.path().join("out2.npz");
    let o = dqc(&[
        "eval",
        p(&model),
        "--inputs",
        p(&inputs),
        "--outputs",
        p(&outputs2),
    ]);
    assert!(o.status.success());
    let outs2 = dqc_ir::npz::read_npz(&outputs2).unwrap();
    assert!(outs2[0].1.bit_eq(y));
}

#[test]
fn missing_file_is_a_clear_error() {
    let o = dqc(&["inspect", "/nonexistent/model.dqc"]);
    assert_clean_failure(&o, "/nonexistent/model.dqc");
}

#[test]
fn unsupported_extension_is_refused() {
    let o = inspect_source("model.txt", "hello");
    assert_clean_failure(&o, "unsupported model file");
}

#[test]
fn parse_error_names_file_line_and_column() {
    let o = inspect_source(
        "bad.dqc",
        "graph @g(%x: f32[2]) -> (f32[2]) {\n  %y = add(%x, %x\n  return %y\n}\n",
    );
    assert_clean_failure(&o, "bad.dqc:");
}

#[test]
fn verifier_error_names_the_node() {
    let o = inspect_source(
        "bad.dqc",
        "graph @g(%x: f32[2,3], %w: f32[4,5]) -> (f32[2,5]) {\n  %y = matmul(%x, %w)\n  return %y\n}\n",
    );
    assert_clean_failure(&o, "`y`");
}

#[test]
fn eval_reports_missing_and_unknown_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.dqc");
    std::fs::write(
        &model,
        "graph @g(%x: f32[2], %z: f32[2]) -> (f32[2]) {\n  %y = add(%x, %z)\n  return %y\n}\n",
    )
    .unwrap();
    let inputs = dir.path().join("in.npz");
    let x = dqc_ir::Tensor::from_f32(dqc_ir::DType::F32, vec![2], &[1.0, 2.0]).unwrap();
    dqc_ir::npz::write_npz(&inputs, &[("x".into(), x.clone()), ("w".into(), x.clone())]).unwrap();
    let out = dir.path().join("out.npz");
    let o = dqc(&[
        "eval",
        p(&model),
        "--inputs",
        p(&inputs),
        "--outputs",
        p(&out),
    ]);
    assert_clean_failure(&o, "missing inputs z");
    dqc_ir::npz::write_npz(
        &inputs,
        &[
            ("x".into(), x.clone()),
            ("z".into(), x.clone()),
            ("w".into(), x.clone()),
        ],
    )
    .unwrap();
    let o = dqc(&[
        "eval",
        p(&model),
        "--inputs",
        p(&inputs),
        "--outputs",
        p(&out),
    ]);
    assert_clean_failure(&o, "unknown inputs w");
    // Wrong shape: names the input and both types.
    let bad = dqc_ir::Tensor::from_f32(dqc_ir::DType::F32, vec![3], &[1.0, 2.0, 3.0]).unwrap();
    dqc_ir::npz::write_npz(&inputs, &[("x".into(), x), ("z".into(), bad)]).unwrap();
    let o = dqc(&[
        "eval",
        p(&model),
        "--inputs",
        p(&inputs),
        "--outputs",
        p(&out),
    ]);
    assert_clean_failure(&o, "input `z`");
    assert!(!out.exists(), "no output is written on failure");
}

#[test]
fn help_works_for_every_command() {
    for c in [
        "inspect",
        "eval",
        "new-model",
        "make-inputs",
        "compile",
        "run",
        "bench",
        "import",
    ] {
        let o = dqc(&[c, "--help"]);
        assert!(o.status.success(), "{c} --help failed");
    }
}

// ----- ONNX models: `dqc import`, and `inspect`/`eval` on `.onnx` files -----
// Uses the ONNX conformance cases of `shared/onnx-node` next to the checkout (skipped with
// a note when absent).

fn case(name: &str) -> Option<PathBuf> {
    let root =
        dqc_frontend::onnx::testdata::find_onnx_node_dir(Path::new(env!("CARGO_MANIFEST_DIR")))?;
    let p = root.join(name).join("model.onnx");
    p.is_file().then_some(p)
}

#[test]
fn import_inspect_and_eval_an_onnx_model() {
    let Some(model) = case("test_gelu_tanh_1_expanded") else {
        eprintln!("note: shared/onnx-node not found; test skipped");
        return;
    };
    let o = dqc(&["import", p(&model)]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "import failed: {err}");
    assert!(out.contains("graph @") && out.contains("tanh("), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let dqc_file = dir.path().join("gelu.dqc");
    let o = dqc(&["import", p(&model), "-o", p(&dqc_file)]);
    assert!(o.status.success(), "import -o failed: {}", text(&o).1);
    let o = dqc(&["inspect", "--summary", p(&dqc_file)]);
    assert!(
        o.status.success(),
        "inspect of the written file failed: {}",
        text(&o).1
    );

    let o = dqc(&["inspect", "--summary", p(&model)]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "inspect failed: {err}");
    assert!(out.contains("//   onnx ops: "), "{out}");
    assert!(out.contains("Tanh 1"), "{out}");
    assert!(out.contains("//   ops: "), "{out}");

    let inputs = dir.path().join("in.npz");
    let outputs = dir.path().join("out.npz");
    let o = dqc(&["make-inputs", p(&model), "-o", p(&inputs)]);
    assert!(o.status.success(), "make-inputs failed: {}", text(&o).1);
    let o = dqc(&[
        "eval",
        p(&model),
        "--inputs",
        p(&inputs),
        "--outputs",
        p(&outputs),
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
    let o = dqc(&["import", p(&model)]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("operator `BitShift`") && err.contains("not supported"),
        "{err}"
    );
}

#[test]
fn a_closed_output_pipe_ends_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    // sd3's IR text (~70 KB) is more than a pipe holds, so `dqc` is still writing when
    // the reader goes away.
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fixtures/sd3/model.onnx");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dqc"))
        .args(["import", p(&model)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the dqc binary runs");
    let mut first = [0u8; 16];
    let mut out = child.stdout.take().expect("stdout");
    out.read_exact(&mut first).expect("some output");
    drop(out);
    let o = child.wait_with_output().expect("dqc exits");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            o.status.signal(),
            Some(13),
            "ended by SIGPIPE: {:?}",
            o.status
        );
    }
}
