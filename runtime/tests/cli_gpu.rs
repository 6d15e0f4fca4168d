//! `dqc-run`'s GPU-related subcommands where no GPU is needed: `compare`, `ptx`, random
//! inputs for `bench`, and `check`'s refusals (a `cpu` plan; no CUDA here).

mod common;

use common::*;
use dqc_ir::npz::write_npz;
use dqc_runtime::plan::PtxModule;
use dqc_runtime::write_plan;
use std::ffi::OsStr;
use std::process::Command;

fn dqc_run(args: &[&OsStr]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dqc-run"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn compare_reports_errors_and_exits_2_on_a_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.npz");
    let b = dir.path().join("b.npz");
    let c = dir.path().join("c.npz");
    write_npz(&a, &[("y".into(), f32_tensor(vec![2], &[1.0, 2.0]))]).unwrap();
    write_npz(&b, &[("y".into(), f32_tensor(vec![2], &[1.0, 2.001]))]).unwrap();
    write_npz(&c, &[("y".into(), f32_tensor(vec![2], &[1.0, 2.1]))]).unwrap();
    let (code, out, err) = dqc_run(&["compare".as_ref(), b.as_os_str(), a.as_os_str()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok   y: f32[2] max abs 9.999e-4"), "{out}");
    let (code, out, _) = dqc_run(&["compare".as_ref(), c.as_os_str(), a.as_os_str()]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.starts_with("FAIL y:") && out.contains("1 of 2 outside"),
        "{out}"
    );
    // A looser tolerance accepts it; a missing array fails.
    let (code, _, _) = dqc_run(&[
        "compare".as_ref(),
        c.as_os_str(),
        a.as_os_str(),
        "--rtol".as_ref(),
        "0.1".as_ref(),
    ]);
    assert_eq!(code, 0);
    let d = dir.path().join("d.npz");
    write_npz(&d, &[("z".into(), f32_tensor(vec![2], &[1.0, 2.0]))]).unwrap();
    let (code, out, _) = dqc_run(&["compare".as_ref(), d.as_os_str(), a.as_os_str()]);
    assert_eq!((code, out.trim()), (2, "FAIL y: missing from the outputs"));
}

#[test]
fn ptx_writes_each_module() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("bias.dqcplan");
    let ptx = [PtxModule {
        name: "elementwise".into(),
        target: "sm_90".into(),
        text: "// PTX text\n".into(),
    }];
    write_plan(
        &plan,
        &parts("sm_90", bias_program()),
        &bias_weights(),
        &ptx,
    )
    .unwrap();
    let out_dir = dir.path().join("ptx");
    let (code, out, err) = dqc_run(&["ptx".as_ref(), plan.as_os_str(), out_dir.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    let file = out_dir.join("bias.elementwise.sm_90.ptx");
    assert_eq!(out.trim(), file.display().to_string());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "// PTX text\n");
    // A cpu plan has none.
    let cpu = dir.path().join("cpu.dqcplan");
    write_plan(&cpu, &parts("cpu", add_program()), &[], &[]).unwrap();
    let (code, _, err) = dqc_run(&["ptx".as_ref(), cpu.as_os_str(), out_dir.as_os_str()]);
    assert_eq!(code, 1);
    assert!(err.contains("has no PTX modules"), "{err}");
}

#[test]
fn bench_makes_random_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("add.dqcplan");
    write_plan(&plan, &parts("cpu", add_program()), &[], &[]).unwrap();
    let (code, out, err) = dqc_run(&[
        "bench".as_ref(),
        plan.as_os_str(),
        "--dim".as_ref(),
        "B=3".as_ref(),
        "--iters".as_ref(),
        "2".as_ref(),
        "--warmup".as_ref(),
        "0".as_ref(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("2 iterations: median") && out.contains("wall clock"),
        "{out}"
    );
    let (code, _, err) = dqc_run(&[
        "bench".as_ref(),
        plan.as_os_str(),
        "--dim".as_ref(),
        "N=3".as_ref(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("no symbol `N`"), "{err}");
}

#[test]
fn check_needs_a_gpu_plan_and_a_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let cpu = dir.path().join("cpu.dqcplan");
    write_plan(&cpu, &parts("cpu", add_program()), &[], &[]).unwrap();
    let (code, _, err) = dqc_run(&["check".as_ref(), cpu.as_os_str()]);
    assert_eq!(code, 1);
    assert!(err.contains("the plan targets `cpu`"), "{err}");

    // A GPU plan: the CPU half runs, the GPU half is refused here (no `cuda` feature, or
    // no driver on this machine) with one error line.
    let gpu = dir.path().join("gpu.dqcplan");
    let ptx = [PtxModule {
        name: "elementwise".into(),
        target: "sm_80".into(),
        text: String::new(),
    }];
    write_plan(&gpu, &parts("sm_80", bias_program()), &bias_weights(), &ptx).unwrap();
    if dqc_runtime::gpu::driver_available().is_ok() {
        return; // a GPU machine: `check` is exercised by the device check
    }
    let (code, _, err) = dqc_run(&[
        "check".as_ref(),
        gpu.as_os_str(),
        "--dim".as_ref(),
        "B=2".as_ref(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("without the `cuda` feature") || err.contains("no usable CUDA driver"),
        "{err}"
    );
}

#[test]
fn device_scripts_parse() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for script in ["scripts/build-device-bundle.sh", "scripts/device-check.sh"] {
        let out = Command::new("bash")
            .arg("-n")
            .arg(root.join(script))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Every family of the manifest has its model.
    let fam = root.join("scripts/device/families");
    let manifest = std::fs::read_to_string(fam.join("MANIFEST")).unwrap();
    let names: Vec<&str> = manifest
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split('|').next().map(str::trim))
        .collect();
    assert!(names.len() >= 15, "{names:?}");
    for n in names {
        assert!(
            fam.join(format!("{n}.dqc")).is_file(),
            "no model for family `{n}`"
        );
    }
}
