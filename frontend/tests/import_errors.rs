//! Importer errors name the node, the op and what is wrong.

mod common;
mod import_util;

use common::{graph, model, node, vi};
use dqc_frontend::FrontendError;
use dqc_frontend::onnx::proto::{AttributeProto, DataType, NodeProto};
use import_util::{a_float, a_ints, i64s, import, vi_f, vi_t, with_opset};

fn one_node(n: NodeProto, inputs: Vec<dqc_frontend::onnx::proto::ValueInfoProto>) -> String {
    let m = model(graph(vec![n], vec![], inputs, vec![vi("y", &[2, 3])]));
    match import(&m) {
        Ok(_) => panic!("the import should fail"),
        Err(e) => e.to_string(),
    }
}

fn says(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "`{msg}` lacks `{p}`");
    }
}

#[test]
fn unknown_op_names_node_domain_opset_and_close_ops() {
    let msg = one_node(
        node("frob", "Frobnicate", &["x"], &["y"]),
        vec![vi("x", &[2, 3])],
    );
    says(
        &msg,
        &[
            "node `frob` (#0, Frobnicate)",
            "operator `Frobnicate` of domain `ai.onnx` at opset 21 is not supported",
            "no supported op has a close name",
            "ops of `ai.onnx` are supported",
        ],
    );
    let msg = one_node(node("r", "Reshap", &["x"], &["y"]), vec![vi("x", &[2, 3])]);
    says(&msg, &["supported ops nearby: Reshape"]);
    let msg = one_node(
        node("s", "Transposed", &["x"], &["y"]),
        vec![vi("x", &[2, 3])],
    );
    says(&msg, &["supported ops nearby: Transpose"]);
}

#[test]
fn unknown_op_error_is_structured() {
    let m = model(graph(
        vec![node("", "Frobnicate", &["x"], &["y"])],
        vec![],
        vec![vi("x", &[2, 3])],
        vec![vi("y", &[2, 3])],
    ));
    match import(&m) {
        Err(FrontendError::UnsupportedOp {
            node,
            op_type,
            domain,
            opset,
            ..
        }) => {
            assert_eq!(node, "#0 (Frobnicate)");
            assert_eq!(op_type, "Frobnicate");
            assert_eq!(&*domain, "ai.onnx");
            assert_eq!(opset, 21);
        }
        other => panic!("expected UnsupportedOp, got {other:?}"),
    }
}

#[test]
fn op_below_its_first_supported_opset_says_so() {
    let m = with_opset(
        model(graph(
            vec![node("w", "Where", &["c", "x", "x"], &["y"])],
            vec![],
            vec![vi_t("c", DataType::Bool, &["2", "3"]), vi("x", &[2, 3])],
            vec![vi("y", &[2, 3])],
        )),
        8,
    );
    let msg = import(&m).expect_err("Where needs opset 9").to_string();
    says(
        &msg,
        &[
            "`Where` is supported from opset 9 on",
            "the model imports opset 8",
        ],
    );
}

#[test]
fn missing_attribute_is_named() {
    let msg = one_node(node("c", "Cast", &["x"], &["y"]), vec![vi("x", &[2, 3])]);
    says(
        &msg,
        &[
            "node `c` (#0, Cast)",
            "attribute `to`",
            "required but missing",
        ],
    );
}

#[test]
fn attribute_of_the_wrong_type_is_named() {
    let mut n = node("t", "Transpose", &["x"], &["y"]);
    n.attribute.push(AttributeProto {
        name: "perm".into(),
        ..a_float("perm", 1.0)
    });
    let msg = one_node(n, vec![vi("x", &[2, 3])]);
    says(
        &msg,
        &[
            "attribute `perm`",
            "expected a list of integers (INTS), found a float (FLOAT)",
        ],
    );
}

#[test]
fn dtype_mismatch_of_run_time_operands_is_named() {
    let msg = one_node(
        node("add", "Add", &["x", "k"], &["y"]),
        vec![vi("x", &[2, 3]), vi_t("k", DataType::Int64, &["2", "3"])],
    );
    says(
        &msg,
        &[
            "node `add` (#0, Add)",
            "input 1 (`k`)",
            "has dtype i64",
            "f32",
        ],
    );
}

#[test]
fn constant_scalars_take_the_other_operand_dtype() {
    // x (f32) * 2 (an i64 constant, as exporters write Python ints) is fine.
    let m = model(graph(
        vec![node("mul", "Mul", &["x", "two"], &["y"])],
        vec![i64s("two", &[], &[2])],
        vec![vi("x", &[2, 3])],
        vec![vi("y", &[2, 3])],
    ));
    let g = import(&m).expect("imports");
    let t = g.value_type(g.outputs()[0]).map(ToString::to_string);
    assert_eq!(t.as_deref(), Some("f32[2,3]"));
}

#[test]
fn shape_mismatch_names_the_ir_op_and_operands() {
    let msg = one_node(
        node("add", "Add", &["x", "z"], &["y"]),
        vec![vi("x", &[2, 3]), vi("z", &[4])],
    );
    says(
        &msg,
        &[
            "node `add` (#0, Add)",
            "add does not accept operands (f32[2,3], f32[4])",
            "broadcast",
        ],
    );
}

#[test]
fn run_time_axes_are_refused_with_the_reason() {
    let msg = one_node(
        node("u", "Unsqueeze", &["x", "axes"], &["y"]),
        vec![vi("x", &[2, 3]), vi_t("axes", DataType::Int64, &["1"])],
    );
    says(
        &msg,
        &[
            "node `u` (#0, Unsqueeze)",
            "input 1 (`axes`)",
            "must be known at compile time",
        ],
    );
}

#[test]
fn reshape_that_monomials_cannot_solve_is_refused() {
    // [B, 5] → [-1, 2]: 5·B is not a multiple of 2 as a monomial.
    let m = model(graph(
        vec![node("r", "Reshape", &["x", "s"], &["y"])],
        vec![i64s("s", &[2], &[-1, 2])],
        vec![vi_f("x", &["B", "5"])],
        vec![vi_f("y", &["N", "2"])],
    ));
    let msg = import(&m).expect_err("unsolvable").to_string();
    says(
        &msg,
        &["node `r` (#0, Reshape)", "cannot solve the -1 entry", "5*B"],
    );
}

#[test]
fn squeeze_of_a_non_unit_axis_is_refused() {
    let mut n = node("sq", "Squeeze", &["x"], &["y"]);
    n.attribute.push(a_ints("axes", &[0]));
    let m = with_opset(
        model(graph(
            vec![n],
            vec![],
            vec![vi("x", &[2, 3])],
            vec![vi("y", &[2, 3])],
        )),
        11,
    );
    let msg = import(&m).expect_err("axis 0 has extent 2").to_string();
    says(&msg, &["cannot squeeze axis 0 of extent 2"]);
}

#[test]
fn model_local_functions_are_refused_with_advice() {
    use dqc_frontend::onnx::proto::FunctionProto;
    let mut n = node("f", "MyRelu", &["x"], &["y"]);
    n.domain = "local".into();
    let mut m = model(graph(
        vec![n],
        vec![],
        vec![vi("x", &[2, 3])],
        vec![vi("y", &[2, 3])],
    ));
    m.functions.push(FunctionProto {
        name: "MyRelu".into(),
        domain: "local".into(),
        input: vec!["a".into()],
        output: vec!["b".into()],
        node: vec![node("r", "Relu", &["a"], &["b"])],
        ..Default::default()
    });
    let msg = import(&m).expect_err("not inlined").to_string();
    says(
        &msg,
        &["node `f` (#0, MyRelu)", "model-local function", "inline"],
    );
}
