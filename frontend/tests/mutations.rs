//! Property: no byte string makes the loader panic. Mutations of a real model
//! (truncation, byte flips, insertions, deletions) and random bytes are fed to
//! `load_model_from_bytes`; the result must be `Ok` with the loader's invariants, or `Err`.
//! This is the stable-toolchain stand-in for the cargo-fuzz target in `fuzz/`.

mod common;

use std::path::Path;

use common::*;
use dqc_frontend::onnx::load_model_from_bytes;
use dqc_frontend::onnx::proto::{AttributeProto, AttributeType, DataType, TensorProto};
use proptest::prelude::*;

/// A model exercising most message types: raw, typed and external tensors, a subgraph,
/// a tensor attribute.
fn rich_model() -> Vec<u8> {
    let mut m = small_model();
    let then_g = graph(
        vec![node("t", "Relu", &["s"], &["r"])],
        vec![],
        vec![],
        vec![vi("r", &[2, 3])],
    );
    let mut if_node = node("if", "If", &["c"], &["z"]);
    if_node.attribute = vec![
        graph_attr("then_branch", then_g.clone()),
        graph_attr("else_branch", then_g),
    ];
    let mut constant = node("k", "Constant", &[], &["c"]);
    constant.attribute = vec![AttributeProto {
        name: "value".into(),
        r#type: AttributeType::Tensor as i32,
        t: Some(TensorProto {
            data_type: DataType::Bool as i32,
            int32_data: vec![1],
            ..Default::default()
        }),
        ..Default::default()
    }];
    if let Some(g) = m.graph.as_mut() {
        g.node.push(constant);
        g.node.push(if_node);
        g.output.push(vi("z", &[2, 3]));
        g.initializer.push(TensorProto {
            name: "i".into(),
            dims: vec![2],
            data_type: DataType::Int64 as i32,
            int64_data: vec![-1, 1 << 40],
            ..Default::default()
        });
        g.initializer.push(TensorProto {
            name: "h".into(),
            dims: vec![2],
            data_type: DataType::Float16 as i32,
            int32_data: vec![0x3C00, 0xC000],
            ..Default::default()
        });
        g.initializer.push(TensorProto {
            name: "q".into(),
            dims: vec![3],
            data_type: DataType::Int4 as i32,
            raw_data: bytes::Bytes::from_static(&[0xE1, 0x03]),
            ..Default::default()
        });
    }
    encode(&m)
}

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len();
    match m {
        Mutation::Truncate(i) => bytes.truncate(if len == 0 { 0 } else { i % len }),
        Mutation::Flip(i, x) if len > 0 => bytes[i % len] ^= x,
        Mutation::Flip(..) => {}
        Mutation::Insert(i, v) => {
            let at = i % (len + 1);
            bytes.splice(at..at, v.iter().copied());
        }
        Mutation::Delete(i, n) if len > 0 => {
            let at = i % len;
            let end = (at + n).min(len);
            bytes.drain(at..end);
        }
        Mutation::Delete(..) => {}
    }
}

fn check(bytes: &[u8]) {
    if let Ok(m) = load_model_from_bytes(bytes, Path::new("/nonexistent-dqc-dir")) {
        let mut order = m.node_order().to_vec();
        order.sort_unstable();
        assert_eq!(order, (0..m.graph().node.len()).collect::<Vec<_>>());
        for t in m.initializers().values() {
            assert_eq!(t.bytes().len(), t.dtype().storage_bytes(t.numel()));
        }
    }
}

#[test]
fn rich_model_is_valid() {
    let m = load_model_from_bytes(&rich_model(), Path::new(".")).expect("base model loads");
    assert_eq!(m.initializers().len(), 4);
    assert_eq!(
        m.initializer("q").map(|t| t.to_i64_vec()),
        Some(vec![1, -2, 3])
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_models_never_panic(muts in prop::collection::vec(mutation(), 1..5)) {
        let mut bytes = rich_model();
        for m in &muts {
            apply(&mut bytes, m);
        }
        check(&bytes);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check(&bytes);
    }
}

#[test]
fn every_single_byte_flip_is_handled() {
    let base = rich_model();
    let (mut ok, mut err) = (0, 0);
    for i in 0..base.len() {
        let mut b = base.clone();
        b[i] ^= 0xFF;
        check(&b);
        match load_model_from_bytes(&b, Path::new("/nonexistent-dqc-dir")) {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
    }
    // Flips inside raw float data keep the model valid; flips in tags or lengths break it.
    assert!(ok > 0 && err > 0, "ok {ok}, err {err}");
}
