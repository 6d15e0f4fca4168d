//! PTX of the row-reduction family on small specs (see `ptx_util` for what is checked:
//! generation for all 8 targets, ptxas assembly, snapshots for sm_80 / sm_90 / sm_100a).
#![cfg(feature = "ptx")]

mod lower_util;
mod ptx_util;

use ptx_util::{ptx_for, snapshot};

#[test]
fn layer_norm_with_modulate_epilogue() {
    let snaps = ptx_for(
        "graph @g(%x: f32[B,4,8], %sh: f32[B,8], %sc: f32[B,8], %gm: f32[8], %bt: f32[8]) -> (f32[B,4,8]) {
          %n = layer_norm(%x, %gm, %bt) {axis = -1, eps = 1e-6, affine = true}
          %m = modulate(%n, %sh, %sc)
          return %m
        }",
        "row_reduce",
    );
    snapshot("row_reduce_layer_norm", snaps);
}

#[test]
fn rms_norm_with_prologue() {
    let snaps = ptx_for(
        "graph @g(%x: f32[3,8], %r: f32[3,8], %gm: f32[8]) -> (f32[3,8]) {
          %a = add(%x, %r)
          %n = rms_norm(%a, %gm) {axis = 1, eps = 1e-5, affine = true}
          return %n
        }",
        "row_reduce",
    );
    snapshot("row_reduce_rms_norm", snaps);
}

#[test]
fn softmax_middle_axis() {
    let snaps = ptx_for(
        "graph @g(%x: f32[2,3,4]) -> (f32[2,3,4]) {
          %b = softmax(%x) {axis = 1}
          return %b
        }",
        "row_reduce",
    );
    snapshot("row_reduce_softmax", snaps);
}

/// The lowering never emits `LogSoftmax` (yet): lower a softmax and switch the op, then
/// generate and assemble for every target.
#[test]
fn log_softmax_f16() {
    use dqc_codegen::lower::{LowerOptions, lower};
    use dqc_codegen::ptx::compile_program;
    use dqc_codegen::spec::{Kernel, RowOp};
    let g = lower_util::parse(
        "graph @g(%x: f16[B,7]) -> (f16[B,7]) {
          %b = softmax(%x) {axis = -1}
          return %b
        }",
    );
    let mut program = lower(&g, &LowerOptions::default()).unwrap().program;
    let mut switched = 0;
    for k in &mut program.kernels {
        if let Kernel::RowReduce(r) = &mut k.body {
            assert_eq!(r.op, RowOp::Softmax);
            r.op = RowOp::LogSoftmax;
            switched += 1;
        }
    }
    assert_eq!(switched, 1);
    for t in ptx_util::ALL_TARGETS {
        let target = dqc_ir::Target::parse(t).unwrap();
        let mods = compile_program(&program, &target).unwrap();
        let m = mods.iter().find(|m| m.module == "row_reduce").unwrap();
        // log-softmax subtracts ln Σ: lg2.approx appears, the output division does not
        assert!(m.text.contains("lg2.approx"), "{t}: {}", m.text);
        if let Some(r) = ptx_util::assemble(&m.text, t) {
            r.unwrap_or_else(|e| panic!("ptxas -arch={t}: {e}\n{}", m.text));
        }
    }
}

#[test]
fn float_reductions_every_op() {
    ptx_for(
        "graph @g(%x: f32[2,3,4]) -> (f32[2,1,4], f32[3], f32[2,4], f32[], f32[2,3], f32[2,3]) {
          %a = reduce_mean(%x) {axes = [1], keepdims = true}
          %b = reduce_sum(%x) {axes = [0, 2], keepdims = false}
          %c = reduce_max(%x) {axes = [-2], keepdims = false}
          %d = reduce_l2(%x) {axes = [], keepdims = false}
          %e = reduce_min(%x) {axes = [2], keepdims = false}
          %f = reduce_prod(%x) {axes = [2], keepdims = false}
          return %a, %b, %c, %d, %e, %f
        }",
        "row_reduce",
    );
}

#[test]
fn reduce_mean_epilogue_snapshot() {
    let snaps = ptx_for(
        "graph @g(%x: f32[3,4]) -> (f32[3]) {
          %a = reduce_mean(%x) {axes = [1], keepdims = false}
          %b = sqrt(%a)
          return %b
        }",
        "row_reduce",
    );
    snapshot("row_reduce_mean", snaps);
}

#[test]
fn integer_reductions() {
    ptx_for(
        "graph @g(%x: i32[2,5], %y: i8[2,5]) -> (i32[2], i32[2], i8[2], i8[2], i32[2], i32[2]) {
          %a = reduce_sum(%x) {axes = [1], keepdims = false}
          %b = reduce_mean(%x) {axes = [1], keepdims = false}
          %c = reduce_max(%y) {axes = [1], keepdims = false}
          %d = reduce_min(%y) {axes = [1], keepdims = false}
          %e = reduce_prod(%x) {axes = [1], keepdims = false}
          %f = cumsum(%x) {axis = 1, exclusive = true, reverse = false}
          return %a, %b, %c, %d, %e, %f
        }",
        "row_reduce",
    );
}

#[test]
fn arg_reductions() {
    let snaps = ptx_for(
        "graph @g(%x: f32[2,3,4]) -> (i64[2,4]) {
          %e = argmax(%x) {axis = 1, keepdims = false}
          return %e
        }",
        "row_reduce",
    );
    snapshot("row_reduce_argmax", snaps);
    ptx_for(
        "graph @g(%x: i32[2,3,4]) -> (i64[2,3]) {
          %e = argmin(%x) {axis = -1, keepdims = false}
          return %e
        }",
        "row_reduce",
    );
}

#[test]
fn cumsum_reverse() {
    let snaps = ptx_for(
        "graph @g(%x: f32[2,3,4]) -> (f32[2,3,4]) {
          %f = cumsum(%x) {axis = 1, exclusive = false, reverse = true}
          return %f
        }",
        "row_reduce",
    );
    snapshot("row_reduce_cumsum", snaps);
}

/// The launch the executor makes: one 256-thread block per row (grid-stride beyond the
/// grid limit), with the running sums' shared slots.
#[test]
fn launch_one_block_per_row() {
    use dqc_codegen::lower::{LowerOptions, lower};
    use dqc_codegen::ptx::abi::{Bindings, launch_config};
    let g = lower_util::parse(
        "graph @g(%x: f32[B,3,8]) -> (f32[B,3,8]) {
          %n = softmax(%x) {axis = -1}
          return %n
        }",
    );
    let program = lower(&g, &LowerOptions::default()).unwrap().program;
    let i = program
        .kernels
        .iter()
        .position(|k| k.body.family() == "row_reduce")
        .unwrap();
    let target = dqc_ir::Target::parse("sm_90").unwrap();
    let b: Bindings = [("B".to_string(), 5)].into_iter().collect();
    let l = launch_config(&program, i, &b, &target).unwrap();
    assert_eq!(l.grid, [15, 1, 1]);
    assert_eq!(l.block, [256, 1, 1]);
    assert_eq!(l.shared_bytes, 256 * 16);
}
