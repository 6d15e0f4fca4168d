//! Properties: random constants, names and float attributes round trip exactly.

use proptest::prelude::*;

use super::fixtures::assert_same;
use crate::DType;
use crate::graph::{Graph, Value};
use crate::op::{Op, PadMode};
use crate::shape::{Shape, TensorType};
use crate::tensor::Tensor;
use crate::text::{parse, print};

/// Random tensors of every dtype with random bytes. Bool bytes are 0/1 and the padding
/// nibble of an odd-length packed tensor is zero: those are the canonical encodings (a
/// bool byte of 2 prints as `true` and reads back as 1; padding is not an element).
fn tensor() -> impl Strategy<Value = Tensor> {
    (0..DType::ALL.len(), prop::collection::vec(0u64..5, 0..=3)).prop_flat_map(|(d, shape)| {
        let dtype = DType::ALL[d];
        let n = shape.iter().product::<u64>() as usize;
        prop::collection::vec(any::<u8>(), dtype.storage_bytes(n)).prop_map(move |mut bytes| {
            if dtype == DType::Bool {
                bytes.iter_mut().for_each(|b| *b &= 1);
            }
            if dtype.is_packed()
                && n % 2 == 1
                && let Some(last) = bytes.last_mut()
            {
                *last &= 0x0f;
            }
            Tensor::from_bytes(dtype, shape.clone(), bytes.into()).expect("sized to the shape")
        })
    })
}

fn constant_graph(t: Tensor) -> Graph {
    let mut g = Graph::new("p");
    let id = g.add_node(Op::Constant(t), &[], "n").expect("node");
    g.set_outputs(vec![Value::new(id, 0)]);
    g
}

fn only_op(g: &Graph) -> Op {
    let out = g.outputs()[0];
    g.node(out.node).op.clone()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_constants_round_trip_bit_exactly(t in tensor()) {
        let g = constant_graph(t.clone());
        let text = print(&g);
        let g2 = parse(&text, None).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let Op::Constant(back) = only_op(&g2) else {
            return Err(TestCaseError::fail("not a constant"));
        };
        let decoded = t.to_f32_vec();
        let has_nan = t.dtype().is_float() && decoded.iter().any(|v| v.is_nan());
        if has_nan {
            // NaN payloads are canonicalized: every other element keeps its bits.
            let got = back.to_f32_vec();
            prop_assert_eq!(got.len(), decoded.len());
            for (a, b) in got.iter().zip(&decoded) {
                prop_assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{} vs {}", a, b);
            }
        } else {
            prop_assert!(back.bit_eq(&t), "{:?} vs {:?}\n{}", back.bytes(), t.bytes(), text);
        }
        prop_assert_eq!(print(&g2), text);
    }

    #[test]
    fn random_names_round_trip(
        graph_name in any::<String>(),
        input in any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
        node in any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
        slot in any::<String>(),
    ) {
        prop_assume!(input != node);
        let mut g = Graph::new(graph_name.clone());
        let x = g.add_input(&input, TensorType::new(DType::F32, Shape::fixed(&[2])));
        let id = g.add_node(Op::CacheWrite { slot: slot.clone() }, &[x], &node).expect("node");
        g.set_outputs(vec![Value::new(id, 0), x]);
        let text = print(&g);
        let g2 = parse(&text, None).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(&g2.name, &graph_name);
        prop_assert!(g2.find_value(&input).is_some());
        prop_assert!(g2.find_value(&node).is_some());
        assert_same(&g, &g2);
        prop_assert_eq!(print(&g2), text);
    }

    #[test]
    fn float_attributes_round_trip_bit_exactly(bits in any::<u32>()) {
        let v = f32::from_bits(bits);
        prop_assume!(!v.is_nan());
        let ops = [
            Op::LayerNorm { axis: -1, eps: v, affine: false },
            Op::Gemm { alpha: v, beta: -v, trans_a: false, trans_b: true, has_c: false },
            Op::Pad { pads: vec![1, 1], mode: PadMode::Constant(v) },
            Op::Attention { heads: 2, kv_heads: 1, scale: Some(v), causal: false, has_mask: false },
        ];
        for op in ops {
            let n = op.num_inputs().expect("fixed arity");
            let mut g = Graph::new("f");
            let x = g.add_input("x", TensorType::new(DType::F32, Shape::fixed(&[2])));
            let id = g.add_node(op.clone(), &vec![x; n], "n").expect("node");
            g.set_outputs(vec![Value::new(id, 0)]);
            let text = print(&g);
            let g2 = parse(&text, None).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            let back = only_op(&g2);
            let bits_of = |op: &Op| -> Vec<u32> {
                match op {
                    Op::LayerNorm { eps, .. } => vec![eps.to_bits()],
                    Op::Gemm { alpha, beta, .. } => vec![alpha.to_bits(), beta.to_bits()],
                    Op::Pad { mode: PadMode::Constant(c), .. } => vec![c.to_bits()],
                    Op::Attention { scale: Some(s), .. } => vec![s.to_bits()],
                    _ => Vec::new(),
                }
            };
            prop_assert_eq!(bits_of(&back), bits_of(&op), "{}", text);
            prop_assert!(!bits_of(&op).is_empty());
        }
    }
}
