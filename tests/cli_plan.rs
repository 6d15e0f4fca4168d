//! The plan commands of the `dqc` binary end to end: `compile` → `inspect` → `run` →
//! `bench`, and the bad inputs the CPU pipeline must refuse with one clear line (no
//! panic): unknown target, unknown pass, damaged plans, wrong inputs; and `compile` never
//! clobbers an existing plan when it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dqc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dqc"))
        .args(args)
        .output()
        .expect("the dqc binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn assert_clean_failure(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "expected failure: {}", stdout(o));
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "stderr lacks `{needle}`: {err}");
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn dit() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fixtures/dit")
}

/// Compile the DiT fixture into `dir`, returning the plan path.
fn compile_dit(dir: &Path) -> PathBuf {
    let plan = dir.join("dit.dqcplan");
    let o = dqc(&[
        "compile",
        p(&dit().join("model.onnx")),
        "--target",
        "cpu",
        "-o",
        p(&plan),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    for want in [
        "plan: ",
        "kernels: ",
        "attention",
        "peak activation memory: ",
    ] {
        assert!(out.contains(want), "compile output lacks `{want}`: {out}");
    }
    plan
}

#[test]
fn compile_inspect_run_bench() {
    let dir = tempfile::tempdir().unwrap();
    let plan = compile_dit(dir.path());
    let o = dqc(&["inspect", p(&plan)]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("attention"), "{}", stdout(&o));

    let out = dir.path().join("out.npz");
    let o = dqc(&[
        "run",
        p(&plan),
        "--inputs",
        p(&dit().join("inputs.npz")),
        "--outputs",
        p(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout(&o).contains("sample: f32[2, 8, 8, 8] checksum"),
        "{}",
        stdout(&o)
    );
    let got = dqc_ir::npz::read_npz(&out).unwrap();
    let want = dqc_ir::npz::read_npz(dit().join("outputs.npz")).unwrap();
    let (g, w) = (got[0].1.to_f32_vec(), want[0].1.to_f32_vec());
    let scale = w.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = g
        .iter()
        .zip(&w)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(err / scale < 1e-3, "relative error {}", err / scale);

    let o = dqc(&[
        "bench",
        p(&plan),
        "--iters",
        "2",
        "--warmup",
        "1",
        "--dim",
        "batch=3",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("median"), "{}", stdout(&o));
}

/// `dqc bench --lockstep`: `ready` after the warm-up, one timed run per line of stdin,
/// each answered with `ms <time>`; stdin closing early is a clean error; `--top` bounds the
/// profile's kernel list.
#[test]
fn bench_lockstep_takes_turns_from_stdin() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().unwrap();
    let plan = compile_dit(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_dqc"))
        .args([
            "bench",
            p(&plan),
            "--iters",
            "3",
            "--warmup",
            "1",
            "--lockstep",
            "--profile",
            "--top",
            "2",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the dqc binary runs");
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    for _ in 0..3 {
        writeln!(stdin, "go").unwrap();
        stdin.flush().unwrap();
        line.clear();
        out.read_line(&mut line).unwrap();
        let ms: f64 = line
            .strip_prefix("ms ")
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or_else(|| panic!("expected `ms <time>`, got {line:?}"));
        assert!(ms > 0.0, "{line}");
    }
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(rest.contains("3 iterations"), "{rest}");
    let listed = rest
        .lines()
        .filter(|l| l.trim_start().starts_with('#'))
        .count();
    assert_eq!(listed, 2, "--top 2 lists two kernels: {rest}");

    // Too few go-aheads: a clean one-line error naming the run that never came.
    // (`dqc` runs the binary with stdin closed.)
    let o = dqc(&[
        "bench",
        p(&plan),
        "--iters",
        "2",
        "--warmup",
        "1",
        "--lockstep",
    ]);
    assert_clean_failure(&o, "stdin closed before timed run 1 of 2");
    assert_eq!(stdout(&o).trim(), "ready");
}

#[test]
fn compile_refuses_unknown_target_and_pass() {
    let model = dit().join("model.onnx");
    let o = dqc(&["compile", p(&model), "--target", "sm_75"]);
    assert_clean_failure(&o, "valid targets: cpu, sm_80");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.dqcplan");
    let o = dqc(&[
        "compile",
        p(&model),
        "--disable-pass",
        "nope",
        "-o",
        p(&out),
    ]);
    assert_clean_failure(&o, "canonicalize");
    let o = dqc(&["compile", p(&model), "--max-dim", "batch", "-o", p(&out)]);
    assert_clean_failure(&o, "NAME=N");
}

#[test]
fn failed_compile_leaves_existing_plan_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let plan = compile_dit(dir.path());
    let before = std::fs::read(&plan).unwrap();
    let bad = dir.path().join("bad.onnx");
    std::fs::write(&bad, b"not a protobuf at all").unwrap();
    let o = dqc(&["compile", p(&bad), "-o", p(&plan)]);
    assert_clean_failure(&o, "bad.onnx");
    assert_eq!(std::fs::read(&plan).unwrap(), before);
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 2, "no temporary file left behind");
}

#[test]
fn damaged_plans_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let plan = compile_dit(dir.path());
    let bytes = std::fs::read(&plan).unwrap();
    let inputs = dit().join("inputs.npz");

    let cut = dir.path().join("cut.dqcplan");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert_clean_failure(&dqc(&["run", p(&cut), "--inputs", p(&inputs)]), "truncated");

    let flipped = dir.path().join("flipped.dqcplan");
    let mut b = bytes.clone();
    let last = b.len() - 100; // inside the weights section
    b[last] ^= 0x40;
    std::fs::write(&flipped, &b).unwrap();
    assert_clean_failure(
        &dqc(&["run", p(&flipped), "--inputs", p(&inputs)]),
        "checksum",
    );

    let v2 = dir.path().join("v2.dqcplan");
    let mut b = bytes.clone();
    b[8] = 2; // the format version follows the 8-byte magic
    std::fs::write(&v2, &b).unwrap();
    assert_clean_failure(&dqc(&["inspect", p(&v2)]), "version");
}

#[test]
fn wrong_inputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let plan = compile_dit(dir.path());
    let mut ins = dqc_ir::npz::read_npz(dit().join("inputs.npz")).unwrap();
    let write = |name: &str, ins: &[(String, dqc_ir::Tensor)]| {
        let f = dir.path().join(name);
        dqc_ir::npz::write_npz(&f, ins).unwrap();
        f
    };
    let missing = write("missing.npz", &ins[1..]);
    assert_clean_failure(
        &dqc(&["run", p(&plan), "--inputs", p(&missing)]),
        "hidden_states",
    );

    let mut extra = ins.clone();
    extra.push(("bogus".into(), ins[1].1.clone()));
    let extra = write("extra.npz", &extra);
    assert_clean_failure(&dqc(&["run", p(&plan), "--inputs", p(&extra)]), "bogus");

    let x = &ins[0].1;
    let small =
        dqc_ir::Tensor::from_f32(dqc_ir::DType::F32, vec![2, 4, 4, 4], &vec![0.0; 128]).unwrap();
    assert_eq!(x.shape(), &[2, 4, 8, 8]);
    ins[0].1 = small;
    let shape = write("shape.npz", &ins);
    assert_clean_failure(
        &dqc(&["run", p(&plan), "--inputs", p(&shape)]),
        "hidden_states",
    );
}

/// `dqc compile --target sm_100` works on a machine without a GPU: the plan carries PTX,
/// `inspect` lists the modules and each kernel's entry and launch; running it on the CPU-only
/// runtime is refused with a message that says what is needed.
#[test]
fn compile_for_a_gpu_target_without_a_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("dit-sm_100.dqcplan");
    let o = dqc(&[
        "compile",
        p(&dit().join("model.onnx")),
        "--target",
        "sm_100",
        "-o",
        p(&plan),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    assert!(out.contains("target: sm_100"), "{out}");
    assert!(out.contains("ptx: ") && out.contains("gemm"), "{out}");
    let o = dqc(&["inspect", p(&plan)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    assert!(out.contains("ptx modules: "), "{out}");
    assert!(out.contains("[dqc_k0 grid ("), "{out}");
    let o = dqc(&[
        "run",
        p(&plan),
        "--inputs",
        p(&dit().join("inputs.npz")),
        "--outputs",
        p(&dir.path().join("out.npz")),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("cuda"), "the error says how to run it: {err}");
}

#[test]
fn a_plan_is_recognized_by_its_magic_whatever_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("ptq.dqc");
    std::fs::write(
        &model,
        "graph @ptq(%x: f32[T,64]) -> (i8[T,64], f32[T]) {\n\
         %a = abs(%x)\n\
         %m = reduce_max(%a) {axes = [1], keepdims = false}\n\
         %c = constant() {value = dense<f32[]> [127]}\n\
         %s = div(%m, %c)\n\
         %q = quantize(%x, %s) {dtype = i8, scheme = per_channel(axis = 0), has_zero_point = false}\n\
         return %q, %s\n}\n",
    )
    .unwrap();
    let plan = dir.path().join("ptq.bin");
    let o = dqc(&["compile", p(&model), "--target", "cpu", "-o", p(&plan)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = dqc(&["inspect", p(&plan)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    assert!(
        out.contains("target cpu") && out.contains("kernels:"),
        "{out}"
    );
    // Handing a plan to a command that wants a model says what the file is.
    let o = dqc(&["compile", p(&plan), "--target", "cpu"]);
    assert_clean_failure(&o, "is a compiled plan, not a model");
}

/// A plan mapped from its file lets go of a GEMM weight's pages once the kernel has packed
/// it, and copies its small weights out of the mapping; outputs stay the same run after run
/// and equal those of the same plan held in memory (where nothing is released or copied).
#[test]
fn mapped_plan_releases_packed_weights_and_keeps_its_outputs() {
    use dqc_ir::{DType, Tensor};
    use dqc_runtime::{Plan, Session};
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("dit.dqc");
    let plan_path = dir.path().join("dit.dqcplan");
    for args in [
        &[
            "new-model",
            "dit",
            "--preset",
            "tiny",
            "--hidden",
            "384",
            "--heads",
            "6",
            "--depth",
            "1",
            "-o",
            p(&model),
        ][..],
        &["compile", p(&model), "--target", "cpu", "-o", p(&plan_path)],
    ] {
        let o = dqc(args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let mapped = Plan::load(&plan_path).unwrap();
    let owned = Plan::from_bytes("in memory", &std::fs::read(&plan_path).unwrap()).unwrap();
    let x: Vec<f32> = (0..2 * 4 * 8 * 8)
        .map(|i| (i as f32 * 0.37).sin())
        .collect();
    let inputs = [
        (
            "x",
            Tensor::from_f32(DType::F32, vec![2, 4, 8, 8], &x).unwrap(),
        ),
        (
            "t",
            Tensor::from_f32(DType::F32, vec![2], &[10.0, 500.0]).unwrap(),
        ),
        ("y", Tensor::from_i64(DType::I64, vec![2], &[1, 3]).unwrap()),
    ];
    let refs: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (*n, t)).collect();
    let want = Session::new(&owned).unwrap().run(&refs).unwrap();
    let session = Session::new(&mapped).unwrap();
    for run in 0..3 {
        let got = session.run(&refs).unwrap();
        assert_eq!(got.len(), want.len());
        for ((gn, g), (wn, w)) in got.iter().zip(&want) {
            assert_eq!(gn, wn);
            assert_eq!(g.to_f32_vec(), w.to_f32_vec(), "run {run}, output `{gn}`");
        }
    }
    // The largest weight (the MLP's first GEMM operand, 2.25 MiB) is packed on the first
    // run; none of the whole pages it spans is mapped into this process any more.
    #[cfg(target_os = "linux")]
    {
        let bytes = mapped
            .weight_names()
            .filter_map(|n| mapped.weight_bytes(n))
            .max_by_key(|b| b.len())
            .unwrap();
        assert!(
            bytes.len() > 2 << 20,
            "largest weight {} bytes",
            bytes.len()
        );
        if let Some(present) = pages_present(bytes) {
            assert_eq!(present, 0, "pages of a packed weight still mapped");
        }
    }
}

/// How many of the whole pages inside `bytes` are mapped into this process
/// (`/proc/self/pagemap`, bit 63 of each page's entry); `None` where it cannot be read.
#[cfg(target_os = "linux")]
fn pages_present(bytes: &[u8]) -> Option<usize> {
    use std::io::{Read, Seek, SeekFrom};
    let page = 4096usize;
    let (start, end) = (
        bytes.as_ptr() as usize,
        bytes.as_ptr() as usize + bytes.len(),
    );
    let (first, last) = (start.div_ceil(page), end / page);
    let mut f = std::fs::File::open("/proc/self/pagemap").ok()?;
    f.seek(SeekFrom::Start(first as u64 * 8)).ok()?;
    let mut entries = vec![0u8; (last - first) * 8];
    f.read_exact(&mut entries).ok()?;
    Some(
        entries
            .chunks_exact(8)
            .filter(|e| u64::from_le_bytes((*e).try_into().unwrap()) >> 63 == 1)
            .count(),
    )
}
