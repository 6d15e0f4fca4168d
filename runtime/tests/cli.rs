//! The `dqc-run` binary: inspect, run and bench on a zero-kernel plan; errors are one
//! `error:` line with exit status 1.

mod common;

use common::*;
use dqc_ir::npz::{read_npz, write_npz};
use dqc_ir::{DType, Tensor};
use dqc_runtime::write_plan;
use std::process::Command;

fn dqc_run(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
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
fn inspect_run_and_bench_a_plan() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("empty.dqcplan");
    write_plan(&plan, &parts("cpu", empty_program()), &[], &[]).unwrap();
    let (code, out, err) = dqc_run(&["inspect".as_ref(), plan.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("kernels: 0") && out.contains("ids: i64[2*B]"),
        "{out}"
    );

    let inputs = dir.path().join("in.npz");
    let ids = Tensor::from_i64(DType::I64, vec![4], &[0, 1, 2, 3]).unwrap();
    write_npz(
        &inputs,
        &[
            ("x".to_string(), f32_tensor(vec![2, 4], &[1.0; 8])),
            ("ids".to_string(), ids),
        ],
    )
    .unwrap();
    let outputs = dir.path().join("out.npz");
    let (code, _, err) = dqc_run(&[
        "run".as_ref(),
        plan.as_os_str(),
        "--inputs".as_ref(),
        inputs.as_os_str(),
        "--outputs".as_ref(),
        outputs.as_os_str(),
    ]);
    assert_eq!(code, 0, "{err}");
    let got = read_npz(&outputs).unwrap();
    assert_eq!(got, vec![("y".to_string(), f32_tensor(vec![4], &[0.0; 4]))]);

    let (code, out, err) = dqc_run(&[
        "bench".as_ref(),
        plan.as_os_str(),
        "--inputs".as_ref(),
        inputs.as_os_str(),
        "--iters".as_ref(),
        "5".as_ref(),
        "--warmup".as_ref(),
        "1".as_ref(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("5 iterations: median") && out.contains("p10") && out.contains("p90"),
        "{out}"
    );
}

#[test]
fn errors_are_one_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let junk = put(dir.path(), "junk.dqcplan", b"hello, world");
    let (code, out, err) = dqc_run(&["inspect".as_ref(), junk.as_os_str()]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("not a dqc plan"),
        "{err}"
    );

    // A missing input, named.
    let plan = dir.path().join("empty.dqcplan");
    write_plan(&plan, &parts("cpu", empty_program()), &[], &[]).unwrap();
    let inputs = dir.path().join("in.npz");
    write_npz(
        &inputs,
        &[("x".to_string(), f32_tensor(vec![2, 4], &[1.0; 8]))],
    )
    .unwrap();
    let (code, _, err) = dqc_run(&[
        "run".as_ref(),
        plan.as_os_str(),
        "--inputs".as_ref(),
        inputs.as_os_str(),
        "--outputs".as_ref(),
        dir.path().join("o.npz").as_os_str(),
    ]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "error: missing input `ids` (the plan expects i64[2*B])"
    );
}
