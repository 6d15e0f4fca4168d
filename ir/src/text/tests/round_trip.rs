//! Print → parse → print round trips on hand-built graphs.

use std::collections::HashMap;

use super::fixtures::{assert_same, constants, every_op};
use crate::DType;
use crate::graph::Graph;
use crate::op::{Op, StepSchedule};
use crate::shape::{Dim, Shape, TensorType};
use crate::tensor::Tensor;
use crate::text::{parse, print, print_with_weights};

fn reparse(text: &str) -> Graph {
    match parse(text, None) {
        Ok(g) => g,
        Err(e) => panic!("{e}\n--- text ---\n{text}"),
    }
}

#[test]
fn every_op_round_trips() {
    let g = every_op();
    let text = print(&g);
    let g2 = reparse(&text);
    assert_same(&g, &g2);
    assert_eq!(print(&g2), text);
}

#[test]
fn every_op_name_is_printed() {
    let text = print(&every_op());
    for name in [
        "= neg(",
        "= not(",
        "= add(",
        "= xor(",
        "= where(",
        "= cast(",
        "= modulate(",
        "= matmul(",
        "= gemm(",
        "= conv(",
        "= layer_norm(",
        "= rms_norm(",
        "= group_norm(",
        "= softmax(",
        "= gelu(",
        "= silu(",
        "= attention(",
        "= selective_scan(",
        "= reduce_sum(",
        "= reduce_l2(",
        "= argmax(",
        "= argmin(",
        "= cumsum(",
        "= reshape(",
        "= transpose(",
        "= slice(",
        "= concat(",
        "= split(",
        "= gather(",
        "= expand(",
        "= pad(",
        "= resize(",
        "= quantize(",
        "= dequantize(",
        "= qmatmul(",
        "= cache_read(",
        "= cache_write(",
        "= step_gate(",
        "= constant(",
    ] {
        assert!(text.contains(name), "missing {name}");
    }
}

#[test]
fn constants_of_every_dtype_round_trip_bitwise() {
    let g = every_op();
    let g2 = reparse(&print(&g));
    let consts = |g: &Graph| -> Vec<Tensor> {
        g.topo_order()
            .expect("acyclic")
            .into_iter()
            .filter_map(|id| match &g.node(id).op {
                Op::Constant(t) => Some(t.clone()),
                _ => None,
            })
            .collect()
    };
    let (a, b) = (consts(&g), consts(&g2));
    assert_eq!(a.len(), constants().len());
    let dtypes: std::collections::HashSet<DType> = a.iter().map(Tensor::dtype).collect();
    assert_eq!(dtypes.len(), DType::ALL.len(), "fixture covers every dtype");
    for (x, y) in a.iter().zip(&b) {
        assert!(x.bit_eq(y), "{x:?} vs {y:?}");
    }
}

#[test]
fn spellings() {
    let text = print(&every_op());
    for s in [
        "graph @every_op(%x: f32[B,4,8], %y: f32[B,4,8], %onnx::cond/1: bool[B,4,8])",
        "{axis = -1, eps = 1e-6, affine = false}",
        "dense<f32[9]> [1, -0, 3.5, 1e-6, 1.469368e-39, 3.4028235e38, inf, -inf, 0.1]",
        "dense<i64[4]> [-9223372036854775808, 9223372036854775807, -1, 0]} : i64[4]",
        "dense<i4[5]> [-8, 7, 0, -1, 3]",
        "dense<bool[3]> [true, false, true]",
        "dense<fp4e2m1[5]> [0.5, -6, 1.5, -0, 3]",
        "dense<f32[0,3]> []",
        "dense<f8e5m2[2]> [inf, -inf]",
        "{shape = [2*B,16,B*N*N,3*\"seq len\",\"nan\"]} : f32[2*B,16,B*N*N]",
        "{scheme = per_group(axis = 1, size = 64)",
        "%split, %split_1, %split_2 = split(%x) {axis = 2, sizes = [2, 2, 4]} : f32[B,4,2], f32[B,4,2], f32[B,4,4]",
        "mode = constant(-0.5)}",
        "{size = [B,8,16], mode = nearest(round_prefer_floor), coord = half_pixel}",
        "{heads = 16, kv_heads = 4, scale = none, causal = true, has_mask = false}",
        "{schedule = every(period = 2, warmup = 1)}",
        "{schedule = steps([0, 3, 5])}",
        "{slot = \"block \\\"0\\\"\\n\", ty = bf16[B,4,8]}",
        "{a_scheme = none, b_scheme = nvfp4(axis = -1), out = f16}",
        "return %gate3, %split_1, %x, %gate3",
        ") -> (?, f32[B,4,2], f32[B,4,8], ?) {",
    ] {
        assert!(text.contains(s), "missing `{s}` in\n{text}");
    }
}

#[test]
fn externals_round_trip_through_a_store() {
    let g = every_op();
    let (text, weights) = print_with_weights(&g, 4);
    assert!(text.contains("external<f32[9]> \"k0\""), "{text}");
    assert!(
        text.contains("dense<bool[3]>"),
        "small constants stay inline"
    );
    let names: Vec<&str> = weights.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"k0") && names.contains(&"k10") && !names.contains(&"k11"));
    let g2 = parse(&text, Some(&weights)).expect("parses with store");
    assert_same(&g, &g2);
    assert_eq!(print_with_weights(&g2, 4).0, text);
    assert_eq!(print(&g2), print(&g));
    let map: HashMap<String, Tensor> = weights.into_iter().collect();
    assert!(parse(&text, Some(&map)).is_ok());
}

#[test]
fn quoted_names_and_comments() {
    let src = r#"
// a comment before the header
graph @"my graph\t1"(%"in put": f32[2], %a.b$c/d-e: f32[2]) -> (?) {
  %"out \"1\"" = add(%"in put", %a.b$c/d-e) // trailing comment
  %"\u{1F600}" = neg(%"out \"1\"")
  return %"\u{1f600}"
}
"#;
    let g = parse(src, None).expect("parses");
    assert_eq!(g.name, "my graph\t1");
    assert!(g.find_value("out \"1\"").is_some());
    assert!(g.find_value("\u{1F600}").is_some());
    assert!(g.find_value("a.b$c/d-e").is_some());
    let text = print(&g);
    assert!(text.contains("graph @\"my graph\\t1\"(%\"in put\": f32[2], %a.b$c/d-e: f32[2])"));
    assert!(
        text.contains("%\"\u{1F600}\" = neg(%\"out \\\"1\\\"\")"),
        "{text}"
    );
    assert_same(&g, &reparse(&text));
}

#[test]
fn doc_example_parses() {
    let src = r#"
weights "block.safetensors"
graph @block(%x: f32[B,256,384], %c: f32[B,384]) -> (f32[B,256,384]) {
  %h = layer_norm(%x) {axis = -1, eps = 1e-6, affine = false} : f32[B,256,384]
  %w = constant() {value = dense<f32[2,2]> [1, 2, 3.5, -0]} : f32[2,2]
  %big = constant() {value = external<f32[384,384]> "blocks.0.attn.qkv.weight"}
  %a, %b = split(%h) {axis = 2, sizes = [192, 192]} : f32[B,256,192], f32[B,256,192]
  %r = reshape(%a) {shape = [256*B,192]}
  %ts = constant() {value = dense<f32[]> [1]}
  %q, %s = quantize(%r, %ts) {dtype = fp4e2m1, scheme = nvfp4(axis = -1), has_zero_point = false}
  %"onnx::Mul_7" = mul(%a, %b)
  %old = cache_read() {slot = "block0", ty = f32[B,256,192]}
  %y = step_gate(%"onnx::Mul_7", %old) {schedule = every(period = 2, warmup = 1)}
  return %x
}
"#;
    let mut store = HashMap::new();
    store.insert(
        "blocks.0.attn.qkv.weight".to_string(),
        Tensor::zeros(DType::F32, vec![384, 384]).expect("zeros"),
    );
    let g = parse(src, Some(&store)).expect("doc example parses");
    assert_eq!(g.node_count(), 12);
    let y = g.find_value("y").expect("y");
    assert!(matches!(
        &g.node(y.node).op,
        Op::StepGate {
            schedule: StepSchedule::Every {
                period: 2,
                warmup: 1
            }
        }
    ));
    let r = g.find_value("r").expect("r");
    let b256 = Dim::sym("B").checked_mul(&Dim::fixed(256)).expect("dim");
    assert_eq!(
        g.node(r.node).op,
        Op::Reshape {
            shape: Shape(vec![b256, Dim::fixed(192)])
        }
    );
    let h = g.find_value("h").expect("h");
    assert_eq!(
        g.value_type(h),
        Some(&TensorType::new(
            DType::F32,
            Shape(vec![Dim::sym("B"), 256.into(), 384.into()])
        ))
    );
}

#[test]
fn lenient_input_forms() {
    // Attributes in another order, ints for floats, spaces inside products and types,
    // `0`/`1` for bool elements, `nan` in a float tensor.
    let src = "graph @g(%x: f32 [ 2 * B , 3 ]) -> (?) {\n\
               %k = constant() {value = dense<bool[2]> [0, 1]}\n\
               %n = constant() {value = dense<f16[2]> [nan, -inf]}\n\
               %h = layer_norm(%x) {affine = false, eps = 1, axis = -1}\n\
               %r = reshape(%h) {shape = [2 * B, 3]}\n\
               return %r\n}";
    let g = parse(src, None).expect("parses");
    let h = g.find_value("h").expect("h");
    assert_eq!(
        g.node(h.node).op,
        Op::LayerNorm {
            axis: -1,
            eps: 1.0,
            affine: false
        }
    );
    let text = print(&g);
    assert!(text.contains("%x: f32[2*B,3]"), "{text}");
    assert!(text.contains("dense<bool[2]> [false, true]"), "{text}");
    assert!(text.contains("dense<f16[2]> [nan, -inf]"), "{text}");
    assert!(
        text.contains("{axis = -1, eps = 1.0, affine = false}"),
        "{text}"
    );
}

#[test]
fn snapshot_small_graph() {
    let b = Dim::sym("B");
    let ty = |d: &[Dim]| TensorType::new(DType::F32, Shape(d.to_vec()));
    let mut g = Graph::new("block");
    let x = g.add_input("x", ty(&[b.clone(), 256.into(), 384.into()]));
    let shift = g.add_input("shift", ty(&[b.clone(), 384.into()]));
    let scale = g.add_input("scale", ty(&[b.clone(), 384.into()]));
    let h = g
        .add_node(
            Op::LayerNorm {
                axis: -1,
                eps: 1e-6,
                affine: false,
            },
            &[x],
            "h",
        )
        .expect("node");
    g.set_types(h, vec![ty(&[b.clone(), 256.into(), 384.into()])]);
    let m = g
        .add_node(Op::Modulate, &[crate::Value::new(h, 0), shift, scale], "m")
        .expect("node");
    let w = Tensor::from_f32(DType::F8E4M3, vec![2, 2], &[1.0, -0.5, 448.0, 0.015625]).expect("w");
    let wn = g.add_node(Op::Constant(w), &[], "w").expect("node");
    let s = Tensor::scalar_f32(0.02);
    let sn = g.add_node(Op::Constant(s), &[], "w_scale").expect("node");
    let y = g
        .add_node(
            Op::QMatMul {
                a_scheme: None,
                b_scheme: crate::QuantScheme::PerTensor,
                out: DType::F32,
            },
            &[
                crate::Value::new(m, 0),
                crate::Value::new(wn, 0),
                crate::Value::new(sn, 0),
            ],
            "y",
        )
        .expect("node");
    let o = g
        .add_node(
            Op::StepGate {
                schedule: StepSchedule::Steps(vec![0, 2]),
            },
            &[crate::Value::new(y, 0), x],
            "out",
        )
        .expect("node");
    g.set_outputs(vec![crate::Value::new(o, 0)]);
    let text = print(&g);
    insta::assert_snapshot!(text);
    assert_same(&g, &reparse(&text));
}

#[test]
fn empty_graph_round_trips() {
    let g = Graph::new("");
    let text = print(&g);
    assert_eq!(text, "graph @\"\"() -> () {\n  return\n}\n");
    let g2 = reparse(&text);
    assert_same(&g, &g2);
    assert_eq!(print(&g2), text);
}
