//! Shape folding: the shape subgraphs exporters write on symbolic dimensions vanish into
//! the attributes of the ops that consume them.

mod common;
mod import_util;

use common::{graph, model, node};
use dqc_ir::{DType, Op, Tensor};
use import_util::{a_int, i64s, import, vi_f};

/// Non-input, non-constant ops of the graph, by name.
fn ops(g: &dqc_ir::Graph) -> Vec<&'static str> {
    let order = g.topo_order().expect("acyclic");
    order
        .into_iter()
        .map(|id| &g.node(id).op)
        .filter(|op| !matches!(op, Op::Input { .. } | Op::Constant(_)))
        .map(Op::name)
        .collect()
}

fn out_type(g: &dqc_ir::Graph) -> String {
    let v = g.outputs()[0];
    g.value_type(v).map(ToString::to_string).unwrap_or_default()
}

fn concat_node(name: &str, inputs: &[&str], out: &str) -> dqc_frontend::onnx::proto::NodeProto {
    let mut n = node(name, "Concat", inputs, &[out]);
    n.attribute.push(a_int("axis", 0));
    n
}

#[test]
fn shape_gather_unsqueeze_concat_reshape_becomes_one_reshape() {
    // y = x.reshape(x.shape[0], -1, 3) with x: [B, 4, 6]
    let m = model(graph(
        vec![
            node("shape", "Shape", &["x"], &["s"]),
            node("gather", "Gather", &["s", "zero"], &["b"]),
            node("unsqueeze", "Unsqueeze", &["b", "axes0"], &["b1"]),
            concat_node("concat", &["b1", "rest"], "target"),
            node("reshape", "Reshape", &["x", "target"], &["y"]),
        ],
        vec![
            i64s("zero", &[], &[0]),
            i64s("axes0", &[1], &[0]),
            i64s("rest", &[2], &[-1, 3]),
        ],
        vec![vi_f("x", &["B", "4", "6"])],
        vec![vi_f("y", &["B", "8", "3"])],
    ));
    let g = import(&m).expect("imports");
    assert_eq!(ops(&g), ["reshape"]);
    assert_eq!(out_type(&g), "f32[B,8,3]");
    assert_eq!(g.value_name(g.outputs()[0]), "y");
    // And it runs with B = 2.
    let vals: Vec<f32> = (0..48).map(|v| v as f32).collect();
    let x = Tensor::from_f32(DType::F32, vec![2, 4, 6], &vals).unwrap();
    let y = dqc_ir::interp::run(&g, &[x]).expect("runs");
    assert_eq!(y[0].shape(), &[2, 8, 3]);
    assert_eq!(y[0].to_f32_vec(), vals);
}

#[test]
fn products_and_quotients_of_dims_fold() {
    // y = x.reshape(B, H*W) and z = y.reshape(B*2, H*W/2) with x: [B, 4, 6]
    let m = model(graph(
        vec![
            node("shape", "Shape", &["x"], &["s"]),
            node("g0", "Gather", &["s", "i0"], &["b"]),
            node("g1", "Gather", &["s", "i1"], &["h"]),
            node("g2", "Gather", &["s", "i2"], &["w"]),
            node("hw", "Mul", &["h", "w"], &["hw"]),
            node("u0", "Unsqueeze", &["b", "axes0"], &["b1"]),
            node("u1", "Unsqueeze", &["hw", "axes0"], &["hw1"]),
            concat_node("cat", &["b1", "hw1"], "t1"),
            node("r1", "Reshape", &["x", "t1"], &["y"]),
            node("b2", "Mul", &["b", "two"], &["b2"]),
            node("half", "Div", &["hw", "two"], &["hw2"]),
            node("u2", "Unsqueeze", &["b2", "axes0"], &["b21"]),
            node("u3", "Unsqueeze", &["hw2", "axes0"], &["hw21"]),
            concat_node("cat2", &["b21", "hw21"], "t2"),
            node("r2", "Reshape", &["y", "t2"], &["z"]),
        ],
        vec![
            i64s("i0", &[], &[0]),
            i64s("i1", &[], &[1]),
            i64s("i2", &[], &[2]),
            i64s("two", &[], &[2]),
            i64s("axes0", &[1], &[0]),
        ],
        vec![vi_f("x", &["B", "4", "6"])],
        vec![vi_f("z", &["2B", "12"])],
    ));
    let g = import(&m).expect("imports");
    assert_eq!(ops(&g), ["reshape", "reshape"]);
    assert_eq!(out_type(&g), "f32[2*B,12]");
}

#[test]
fn a_symbolic_shape_needed_at_run_time_is_refused_clearly() {
    let m = model(graph(
        vec![node("shape", "Shape", &["x"], &["s"])],
        vec![],
        vec![vi_f("x", &["B", "4"])],
        vec![import_util::vi_t(
            "s",
            dqc_frontend::onnx::proto::DataType::Int64,
            &["2"],
        )],
    ));
    let e = import(&m).expect_err("a symbolic shape cannot be a run-time tensor");
    let msg = e.to_string();
    assert!(msg.contains("[B, 4]"), "{msg}");
    assert!(msg.contains("needed as a tensor at run time"), "{msg}");
}

#[test]
fn static_shapes_fold_to_constants_and_dim_params_are_sanitized() {
    // Shape of a static tensor is a constant; a `dim_param` with odd characters becomes
    // a valid symbol.
    let m = model(graph(
        vec![
            node("shape", "Shape", &["x"], &["s"]),
            node("slice", "Slice", &["s", "st", "en"], &["tail"]),
            concat_node("cat", &["neg", "tail"], "t"),
            node("reshape", "Reshape", &["x", "t"], &["y"]),
        ],
        vec![
            i64s("st", &[1], &[1]),
            i64s("en", &[1], &[i64::MAX]),
            i64s("neg", &[1], &[-1]),
        ],
        vec![vi_f("x", &["batch size:0", "4", "6"])],
        vec![vi_f("y", &["batch size:0", "4", "6"])],
    ));
    let g = import(&m).expect("imports");
    assert!(ops(&g).is_empty(), "{:?}", ops(&g));
    assert_eq!(out_type(&g), "f32[batch_size_0,4,6]");
}

#[test]
fn torchscript_expand_pattern_folds() {
    // target = [B, 4, 6]; ones = ConstantOfShape([3]) = [1, 1, 1];
    // w = Where(Equal(target, -ones), ones, target) = target; y = Expand(x, w).
    let mut cos = node("cos", "ConstantOfShape", &["three"], &["ones"]);
    cos.attribute
        .push(dqc_frontend::onnx::proto::AttributeProto {
            name: "value".into(),
            r#type: dqc_frontend::onnx::proto::AttributeType::Tensor as i32,
            t: Some(i64s("v", &[1], &[1])),
            ..Default::default()
        });
    let m = model(graph(
        vec![
            node("shape", "Shape", &["x"], &["s"]),
            node("gather", "Gather", &["s", "zero"], &["b"]),
            node("unsqueeze", "Unsqueeze", &["b", "axes0"], &["b1"]),
            concat_node("concat", &["b1", "rest"], "target"),
            cos,
            node("neg", "Mul", &["ones", "minus1"], &["negs"]),
            node("eq", "Equal", &["target", "negs"], &["e"]),
            node("where", "Where", &["e", "ones", "target"], &["w"]),
            node("expand", "Expand", &["x", "w"], &["y"]),
        ],
        vec![
            i64s("zero", &[], &[0]),
            i64s("axes0", &[1], &[0]),
            i64s("rest", &[2], &[4, 6]),
            i64s("three", &[1], &[3]),
            i64s("minus1", &[], &[-1]),
        ],
        vec![vi_f("x", &["B", "1", "6"])],
        vec![vi_f("y", &["B", "4", "6"])],
    ));
    let g = import(&m).expect("imports");
    assert_eq!(ops(&g), ["expand"]);
    assert_eq!(out_type(&g), "f32[B,4,6]");
}
