//! The CUDA executor end to end through `dqc-run`, against a fake CUDA driver
//! (`tests/fake_cuda/libcuda.c`, built here with `cc`): host memory stands in for the
//! device and the fake's two entries compute the bias program's kernels. This checks what
//! no GPU is needed for: the driver calls, the architecture check, parameter packing and
//! launch configurations (logged by the fake), weights, arena and output copies, the fault
//! word, the JIT log, launch failures and graph capture.
#![cfg(feature = "cuda")]

mod common;

use common::*;
use dqc_ir::npz::{read_npz, write_npz};
use dqc_runtime::plan::PtxModule;
use dqc_runtime::write_plan;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Build the fake `libcuda.so` into `dir`.
fn build_fake(dir: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_cuda/libcuda.c");
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(dir.join("libcuda.so"))
        .arg(&src)
        .output()
        .expect("a C compiler (`cc`) builds the fake CUDA driver");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new() -> Fake {
        let dir = tempfile::tempdir().unwrap();
        build_fake(dir.path());
        Fake { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A bias plan for `target` whose module text is `text`.
    fn plan(&self, name: &str, target: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        let ptx = [PtxModule {
            name: "elementwise".into(),
            target: target.into(),
            text: text.into(),
        }];
        write_plan(&p, &parts(target, bias_program()), &bias_weights(), &ptx).unwrap();
        p
    }

    /// Run `dqc-run` with the fake driver (compute capability `cc`).
    fn dqc_run(&self, cc: &str, args: &[&std::ffi::OsStr]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_dqc-run"))
            .args(args)
            .env("LD_LIBRARY_PATH", self.dir.path())
            .env("FAKE_CUDA_CC", cc)
            .env("FAKE_CUDA_LOG", self.path("launches.log"))
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn launches(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("launches.log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    fn inputs(&self, b: u64) -> (PathBuf, Vec<f32>) {
        let xs: Vec<f32> = (0..b * 4).map(|i| i as f32 * 0.5 - 2.0).collect();
        let p = self.path(&format!("in{b}.npz"));
        write_npz(&p, &[("x".into(), f32_tensor(vec![b, 4], &xs))]).unwrap();
        let want = xs
            .iter()
            .zip([1.0f32, -2.0, 0.5, 3.0].iter().cycle())
            .map(|(x, w)| 2.0 * (x + w))
            .collect();
        (p, want)
    }
}

/// The `params=` values of a logged launch.
fn params(line: &str) -> Vec<u64> {
    let p = line.split("params=").nth(1).unwrap();
    p.split_whitespace()
        .next()
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect()
}

#[test]
fn runs_a_plan_through_the_driver_api() {
    let f = Fake::new();
    let plan = f.plan("bias.dqcplan", "sm_90", "fake elementwise module");
    let (inputs, want) = f.inputs(3);
    let outputs = f.path("out.npz");
    let (code, out, err) = f.dqc_run(
        "90",
        &[
            "run".as_ref(),
            plan.as_os_str(),
            "--inputs".as_ref(),
            inputs.as_os_str(),
            "--outputs".as_ref(),
            outputs.as_os_str(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("ran on Fake GPU (sm_90, driver CUDA 12.8, 1 PTX modules)"),
        "{out}"
    );
    let got = read_npz(&outputs).unwrap();
    assert_eq!(got[0].0, "out");
    assert_eq!(got[0].1.shape(), &[3, 4]);
    assert_eq!(got[0].1.to_f32_vec(), want);
    // Launch configurations and parameters follow the ABI: 12 elements → one block of 256;
    // fault word, argument addresses, then B = 3; `t` is the same arena address in both.
    let l = f.launches();
    assert_eq!(l.len(), 2, "{l:?}");
    assert!(
        l[0].starts_with("dqc_k0 grid=1,1,1 block=256,1,1 shared=0 params="),
        "{l:?}"
    );
    assert!(
        l[1].starts_with("dqc_k1 grid=1,1,1 block=256,1,1 shared=0 params="),
        "{l:?}"
    );
    let (p0, p1) = (params(&l[0]), params(&l[1]));
    assert_eq!((p0.len(), p1.len()), (6, 5));
    assert_eq!(p0[0], p1[0], "one fault word");
    assert_eq!(
        (p0[1] & 0xffff_ffff, p1[1] & 0xffff_ffff),
        (0, 1),
        "kernel indices"
    );
    assert_eq!(p0[4], p1[2], "the activation `t` is passed to both kernels");
    assert_eq!((p0[5], p1[4]), (3, 3), "the symbol B");
    assert!(
        [p0[0], p0[2], p0[3], p0[4], p1[2], p1[3]]
            .iter()
            .all(|&a| a != 0 && a % 256 == 0)
    );
}

#[test]
fn check_and_bench_with_graphs() {
    let f = Fake::new();
    let plan = f.plan("bias.dqcplan", "sm_90", "fake elementwise module");
    let (code, out, err) = f.dqc_run(
        "90",
        &[
            "check".as_ref(),
            plan.as_os_str(),
            "--dim".as_ref(),
            "B=5".as_ref(),
            "--seed".as_ref(),
            "3".as_ref(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok   out: f32[5, 4] max abs 0.000e0"), "{out}");
    let (code, out, err) = f.dqc_run(
        "90",
        &[
            "bench".as_ref(),
            plan.as_os_str(),
            "--graph".as_ref(),
            "--iters".as_ref(),
            "3".as_ref(),
            "--warmup".as_ref(),
            "1".as_ref(),
            "--profile".as_ref(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("3 iterations: median 0.250 ms"), "{out}");
    // The fake's events are 0.25 ms apart: two kernels, 0.5 ms per run.
    assert!(
        out.contains("profile (ms per run, kernels only: 0.500 ms):"),
        "{out}"
    );
    assert!(
        out.contains("0.250 ms  50.0%  #0 bias (elementwise)"),
        "{out}"
    );
    assert!(out.contains("CUDA graph launches"), "{out}");
    let captured = f
        .launches()
        .iter()
        .filter(|l| l.ends_with("(captured)"))
        .count();
    assert_eq!(captured, 2, "{:?}", f.launches());
}

#[test]
fn refusals_name_what_is_wrong() {
    let f = Fake::new();
    let (inputs, _) = f.inputs(1);
    let outputs = f.path("out.npz");
    let run = |plan: &Path, cc: &str| {
        let (code, out, err) = f.dqc_run(
            cc,
            &[
                "run".as_ref(),
                plan.as_os_str(),
                "--inputs".as_ref(),
                inputs.as_os_str(),
                "--outputs".as_ref(),
                outputs.as_os_str(),
            ],
        );
        assert_eq!(code, 1, "{out}{err}");
        err
    };
    let ok = f.plan("ok.dqcplan", "sm_90", "fake");
    let e = run(&ok, "80");
    assert!(
        e.starts_with(
            "error: plan targets sm_90 but the GPU is sm_80 (Fake GPU): PTX for sm_90 needs compute capability 9.0 or newer"
        ),
        "{e}"
    );
    let a = f.plan("a.dqcplan", "sm_90a", "fake");
    let e = run(&a, "100");
    assert!(
        e.contains("sm_90a code runs only on compute capability 9.0 exactly"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    let e = run(&f.plan("bad.dqcplan", "sm_90", "BADPTX"), "90");
    assert!(
        e.contains("loading PTX module `elementwise` failed: CUDA_ERROR_INVALID_PTX")
            && e.contains(
                "\nJIT log:\nptxas application ptx input, line 3; error   : fake syntax error"
            ),
        "{e}"
    );
    let e = run(&f.plan("old.dqcplan", "sm_90", "OLDPTX"), "90");
    assert!(
        e.contains("driver supports CUDA 12.8") && e.contains("update the driver"),
        "{e}"
    );
    let e = run(&f.plan("fault.dqcplan", "sm_90", "FAULT"), "90");
    assert_eq!(
        e.trim(),
        "error: kernel 1 `scale` (elementwise): a gather index is out of range"
    );
    let e = run(&f.plan("launch.dqcplan", "sm_90", "LAUNCHFAIL"), "90");
    assert_eq!(
        e.trim(),
        "error: launching kernel #0 `bias` (elementwise, grid (1, 1, 1) block (256, 1, 1) shared 0 B) failed: CUDA_ERROR_INVALID_VALUE: invalid argument"
    );
    let none = f.path("none.dqcplan");
    write_plan(&none, &parts("sm_90", bias_program()), &bias_weights(), &[]).unwrap();
    assert_eq!(
        run(&none, "90").trim(),
        "error: kernel #0 `bias`: the plan has no PTX module `elementwise`"
    );
}

/// `scripts/device-check.sh` on a small bundle, with the fake driver standing in for the
/// GPU: the fixture and family steps pass, the steps that need what this machine lacks
/// (the GPU test binary, compute-sanitizer, PyTorch) fail, and every step still runs.
#[test]
fn device_check_script_runs_every_step() {
    let f = Fake::new();
    let bundle = f.path("bundle");
    for d in [
        "bin",
        "plans/fixtures",
        "plans/families",
        "fixtures/bias",
        "ptx",
    ] {
        std::fs::create_dir_all(bundle.join(d)).unwrap();
    }
    std::fs::copy(env!("CARGO_BIN_EXE_dqc-run"), bundle.join("bin/dqc-run")).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::copy(
        root.join("scripts/device_check.py"),
        bundle.join("device_check.py"),
    )
    .unwrap();
    let plan = f.plan("bias.sm_90.dqcplan", "sm_90", "fake module");
    std::fs::copy(&plan, bundle.join("plans/fixtures/bias.sm_90.dqcplan")).unwrap();
    std::fs::copy(&plan, bundle.join("plans/families/bias.sm_90.dqcplan")).unwrap();
    let (inputs, want) = f.inputs(2);
    std::fs::copy(&inputs, bundle.join("fixtures/bias/inputs.npz")).unwrap();
    write_npz(
        bundle.join("fixtures/bias/outputs.npz"),
        &[("out".into(), f32_tensor(vec![2, 4], &want))],
    )
    .unwrap();
    std::fs::write(
        bundle.join("checks.txt"),
        "plans/families/bias.sm_90.dqcplan --seed 1 --dim B=1\nplans/families/bias.sm_90.dqcplan --seed 2 --dim B=8\n",
    )
    .unwrap();
    std::fs::write(
        bundle.join("bench.txt"),
        "bias plans/fixtures/bias.sm_90.dqcplan dit-block --b 2 --n 4 --hidden 8 --heads 2\n",
    )
    .unwrap();
    let out_dir = f.path("out");
    let mut path = std::env::var("PATH").unwrap_or_default();
    path.push_str(":/opt/cuda-nvcc/nvidia/cu13/bin");
    let out = Command::new("bash")
        .arg(root.join("scripts/device-check.sh"))
        .arg(&bundle)
        .arg(&out_dir)
        .env("LD_LIBRARY_PATH", f.dir.path())
        .env("PATH", path)
        .env("CUDA_HOME", f.path("no-cuda"))
        .output()
        .unwrap();
    let log = std::fs::read_to_string(out_dir.join("device-check.log")).unwrap();
    assert_eq!(out.status.code(), Some(1), "{log}");
    for line in [
        "PASS  dqc-run starts",
        "FAIL  executor tests (bin/cuda-tests missing from the bundle)",
        "PASS  fixture bias: run",
        "PASS  fixture bias: outputs vs onnxruntime (rtol 1e-3)",
        "PASS  check bias.sm_90 --seed 1 --dim B=1",
        "PASS  check bias.sm_90 --seed 2 --dim B=8",
        "FAIL  compute-sanitizer (not found)",
        "PASS  bench bias: dqc",
    ] {
        assert!(log.contains(line), "missing `{line}` in:\n{log}");
    }
    assert!(
        // the PTX is extracted from the plans on the device (the fake plan's is not PTX)
        log.contains("ptxas -arch=sm_90 bias.sm_90") || log.contains("FAIL  ptxas (not found"),
        "{log}"
    );
    // PyTorch is not here: the reference timings (one process for every benchmark) fail
    // (or, where it is, there is no GPU).
    assert!(log.contains("FAIL  bench: torch (all)"), "{log}");
    assert!(log.contains("50 iterations: median 0.250 ms"), "{log}");
    assert!(log.contains("== summary: "), "{log}");
}

/// Outputs no kernel writes come back zeroed, as on the CPU (the fake's fresh "device
/// memory" is 0xcd bytes).
#[test]
fn unwritten_outputs_are_zero() {
    let f = Fake::new();
    let plan = f.path("empty.dqcplan");
    write_plan(&plan, &parts("sm_90", empty_program()), &[], &[]).unwrap();
    let inputs = f.path("in.npz");
    let ids = dqc_ir::Tensor::from_i64(dqc_ir::DType::I64, vec![4], &[0, 1, 2, 3]).unwrap();
    write_npz(
        &inputs,
        &[
            ("x".into(), f32_tensor(vec![2, 4], &[1.0; 8])),
            ("ids".into(), ids),
        ],
    )
    .unwrap();
    let outputs = f.path("out.npz");
    let (code, out, err) = f.dqc_run(
        "90",
        &[
            "run".as_ref(),
            plan.as_os_str(),
            "--inputs".as_ref(),
            inputs.as_os_str(),
            "--outputs".as_ref(),
            outputs.as_os_str(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let got = read_npz(&outputs).unwrap();
    assert_eq!(got, vec![("y".to_string(), f32_tensor(vec![4], &[0.0; 4]))]);
}
