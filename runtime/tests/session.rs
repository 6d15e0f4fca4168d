//! Sessions: input checking and symbol binding (through a zero-kernel plan, which the CPU
//! backend compiles today), target refusal, and execution of hand-built programs.

mod common;

use common::*;
use dqc_ir::{DType, Tensor};
use dqc_runtime::plan::{Plan, plan_bytes};
use dqc_runtime::{RuntimeError, Session};

fn empty_session() -> Session {
    let bytes = plan_bytes(&parts("cpu", empty_program()), &[], &[]).unwrap();
    Session::new(&Plan::from_bytes("empty.dqcplan", &bytes).unwrap()).unwrap()
}

fn ids(n: usize) -> Tensor {
    Tensor::from_i64(DType::I64, vec![n as u64], &vec![1; n]).unwrap()
}

fn x(b: u64) -> Tensor {
    f32_tensor(vec![b, 4], &vec![0.5; (b * 4) as usize])
}

#[test]
fn binds_symbols_and_runs_a_zero_kernel_plan() {
    let s = empty_session();
    let (x3, ids6) = (x(3), ids(6));
    let b = s.bind(&[("ids", &ids6), ("x", &x3)]).unwrap();
    assert_eq!(b.get("B"), Some(&3));
    let out = s.run(&[("x", &x3), ("ids", &ids6)]).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, "y");
    assert_eq!(out[0].1, f32_tensor(vec![4], &[0.0; 4]));
    assert_eq!(s.compiled_variants(), 1);
    s.run(&[("x", &x(5)), ("ids", &ids(10))]).unwrap();
    s.run(&[("x", &x3), ("ids", &ids6)]).unwrap();
    assert_eq!(s.compiled_variants(), 2);
}

#[test]
fn missing_input_is_named() {
    let s = empty_session();
    let e = s.run(&[("x", &x(2))]).unwrap_err();
    assert!(matches!(&e, RuntimeError::MissingInput { name, .. } if name == "ids"));
    assert_eq!(
        e.to_string(),
        "missing input `ids` (the plan expects i64[2*B])"
    );
}

#[test]
fn extra_input_is_named() {
    let s = empty_session();
    let (x2, i4, z) = (x(2), ids(4), x(2));
    let e = s
        .run(&[("x", &x2), ("ids", &i4), ("bogus", &z)])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "`bogus` is not an input of this plan (its inputs: x, ids)"
    );
    let e = s.run(&[("x", &x2), ("x", &x2), ("ids", &i4)]).unwrap_err();
    assert_eq!(e.to_string(), "input `x` is given twice");
}

#[test]
fn wrong_dtype_is_named_with_both_types() {
    let s = empty_session();
    let bad = Tensor::from_f32(DType::F16, vec![2, 4], &[0.0; 8]).unwrap();
    let e = s.run(&[("x", &bad), ("ids", &ids(4))]).unwrap_err();
    assert_eq!(e.to_string(), "input `x`: dtype f16, the plan expects f32");
}

#[test]
fn wrong_shapes_are_named_with_both_shapes() {
    let s = empty_session();
    let i4 = ids(4);
    // Wrong static dimension.
    let bad = f32_tensor(vec![2, 5], &[0.0; 10]);
    let e = s.run(&[("x", &bad), ("ids", &i4)]).unwrap_err().to_string();
    assert!(
        e.starts_with("input `x`: shape [2, 5], the plan expects [B,4]")
            && e.contains("dimension 1 is 5"),
        "{e}"
    );
    // Wrong rank.
    let bad = f32_tensor(vec![8], &[0.0; 8]);
    let e = s.run(&[("x", &bad), ("ids", &i4)]).unwrap_err().to_string();
    assert!(e.contains("rank 1, expected rank 2"), "{e}");
    // Inconsistent symbol: x says B = 2, ids has 6 = 2*3.
    let e = s
        .run(&[("x", &x(2)), ("ids", &ids(6))])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("input `ids`")
            && e.contains("dimension 0 is 6, but 2*B is 4 with B = 2 from input `x` dimension 0"),
        "{e}"
    );
    // A batch of 0 binds no positive value.
    let e = s
        .run(&[("ids", &ids(0)), ("x", &x(0))])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("input `x`")
            && e.contains("dimension 0 is 0, which gives no positive whole value of `B`"),
        "{e}"
    );
}

#[test]
fn symbol_above_its_maximum_says_how_to_recompile() {
    let s = empty_session();
    let e = s.run(&[("x", &x(32)), ("ids", &ids(64))]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "B = 32 exceeds the plan's maximum 16; recompile with --max-dim B=32"
    );
}

#[cfg(not(feature = "cuda"))]
#[test]
fn gpu_plans_need_the_cuda_feature() {
    let ptx = [dqc_runtime::plan::PtxModule {
        name: "m".into(),
        target: "sm_100a".into(),
        text: String::new(),
    }];
    let bytes = plan_bytes(&parts("sm_100a", add_program()), &[], &ptx).unwrap();
    let plan = Plan::from_bytes("gpu.dqcplan", &bytes).unwrap();
    let e = Session::new(&plan).unwrap_err().to_string();
    assert!(
        e.contains("`sm_100a`") && e.contains("without the `cuda` feature"),
        "{e}"
    );
    // The program is target independent: the CPU still runs it on request.
    let s = dqc_runtime::Session::on_device(&plan, dqc_runtime::Device::Cpu).unwrap();
    let a = f32_tensor(vec![1, 4], &[1., 2., 3., 4.]);
    let out = s.run(&[("x", &a), ("y", &a)]).unwrap();
    assert_eq!(out[0].1, f32_tensor(vec![1, 4], &[2., 4., 6., 8.]));
}

#[test]
fn input_checks_come_before_compilation() {
    // The add program's kernel is not compiled before its inputs are checked.
    let bytes = plan_bytes(&parts("cpu", add_program()), &[], &[]).unwrap();
    let s = Session::new(&Plan::from_bytes("add", &bytes).unwrap()).unwrap();
    let e = s.run(&[("x", &x(2))]).unwrap_err();
    assert!(matches!(e, RuntimeError::MissingInput { .. }), "{e}");
    assert_eq!(s.compiled_variants(), 0);
}

#[test]
fn add_kernel_adds() {
    let bytes = plan_bytes(&parts("cpu", add_program()), &[], &[]).unwrap();
    let s = Session::new(&Plan::from_bytes("add", &bytes).unwrap()).unwrap();
    let a = f32_tensor(vec![2, 4], &[1., 2., 3., 4., 5., 6., 7., 8.]);
    let b = f32_tensor(vec![2, 4], &[10., 20., 30., 40., 50., 60., 70., 80.]);
    let out = s.run(&[("x", &a), ("y", &b)]).unwrap();
    assert_eq!(out[0].0, "z");
    assert_eq!(
        out[0].1,
        f32_tensor(vec![2, 4], &[11., 22., 33., 44., 55., 66., 77., 88.])
    );
    // Another batch size compiles a second variant.
    let c = f32_tensor(vec![1, 4], &[1., 1., 1., 1.]);
    let out = s.run(&[("x", &c), ("y", &c)]).unwrap();
    assert_eq!(out[0].1, f32_tensor(vec![1, 4], &[2.; 4]));
    assert_eq!(s.compiled_variants(), 2);
}

#[test]
fn weights_and_arena_activations_flow_between_kernels() {
    let plan = Plan::from_bytes("bias", &bias_plan_bytes()).unwrap();
    let s = Session::new(&plan).unwrap();
    let xs = f32_tensor(vec![2, 4], &[0., 1., 2., 3., 4., 5., 6., 7.]);
    let out = s.run(&[("x", &xs)]).unwrap();
    // out = max(2·(x + w), -inf), w = [1, -2, 0.5, 3].
    let want: Vec<f32> = [0., 1., 2., 3., 4., 5., 6., 7.]
        .iter()
        .zip([1., -2., 0.5, 3.].iter().cycle())
        .map(|(x, w)| 2.0 * (x + w))
        .collect();
    assert_eq!(out[0].1, f32_tensor(vec![2, 4], &want));
    // Unaligned input storage is copied, with the same result.
    let bytes: Vec<u8> = std::iter::once(0u8)
        .chain(xs.bytes().iter().copied())
        .collect();
    let shifted: std::sync::Arc<[u8]> = std::sync::Arc::from(&bytes[1..]);
    let unaligned = Tensor::from_bytes(DType::F32, vec![2, 4], shifted).unwrap();
    let out2 = s.run(&[("x", &unaligned)]).unwrap();
    assert_eq!(out2[0].1, out[0].1);
}
