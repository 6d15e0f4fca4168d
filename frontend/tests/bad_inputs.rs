//! Malformed models and tensors are refused with errors that name the problem; none
//! panics.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use dqc_frontend::FrontendError;
use dqc_frontend::onnx::proto::{AttributeProto, DataType, OperatorSetIdProto, TensorProto};
use dqc_frontend::onnx::{load_model, load_model_from_bytes};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write test file");
    p
}

fn load_bytes(bytes: &[u8]) -> Result<dqc_frontend::onnx::OnnxModel, FrontendError> {
    load_model_from_bytes(bytes, Path::new("."))
}

#[test]
fn valid_small_model_loads() {
    let m = load_bytes(&encode(&small_model())).expect("valid model");
    assert_eq!(m.ir_version(), 10);
    assert_eq!(m.opset_version("ai.onnx"), Some(21));
    assert_eq!(m.node_order(), &[0, 1]);
    let w = m.initializer("w").expect("w converted");
    assert_eq!(w.to_f32_vec(), vec![1.0, -2.0, 3.0, -4.0, 5.0, -6.0]);
    let inputs: Vec<&str> = m.runtime_inputs().map(|v| v.name.as_str()).collect();
    assert_eq!(inputs, vec!["x"]);
}

#[test]
fn truncated_file_is_not_onnx() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = encode(&small_model());
    let p = write(dir.path(), "m.onnx", &bytes[..bytes.len() - 3]);
    let e = load_model(&p).unwrap_err();
    assert!(matches!(e, FrontendError::NotOnnx { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("not an ONNX model"), "{msg}");
    assert!(msg.contains("m.onnx"), "{msg}");
}

#[test]
fn every_truncation_is_an_error_or_a_model_never_a_panic() {
    let bytes = encode(&small_model());
    for len in 0..bytes.len() {
        let _ = load_bytes(&bytes[..len]);
    }
}

#[test]
fn garbage_bytes_are_not_onnx() {
    let garbage: Vec<u8> = (0u32..512)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 | 0x80)
        .collect();
    let e = load_bytes(&garbage).unwrap_err();
    assert!(matches!(e, FrontendError::NotOnnx { .. }), "{e}");
    let e = load_bytes(b"hello, this is plainly not a model\n").unwrap_err();
    assert!(matches!(e, FrontendError::NotOnnx { .. }), "{e}");
}

#[test]
fn empty_file_is_not_onnx() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "empty.onnx", b"");
    let e = load_model(&p).unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
}

#[test]
fn png_header_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "pic.onnx", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
    let e = load_model(&p).unwrap_err();
    assert!(matches!(e, FrontendError::NotOnnx { .. }));
    assert!(e.to_string().contains("PNG"), "{e}");
}

#[test]
fn zip_header_is_named() {
    let e = load_bytes(b"PK\x03\x04\x14\0\0\0\x08\0").unwrap_err();
    assert!(e.to_string().contains("ZIP"), "{e}");
}

#[test]
fn missing_file_is_io_error() {
    let e = load_model(Path::new("/nonexistent/dir/model.onnx")).unwrap_err();
    assert!(matches!(e, FrontendError::Io { .. }), "{e}");
    assert!(e.to_string().contains("/nonexistent/dir/model.onnx"));
}

#[test]
fn missing_initializer_names_node_and_tensor() {
    let mut m = small_model();
    if let Some(g) = m.graph.as_mut() {
        g.initializer.clear();
    }
    let e = load_bytes(&encode(&m)).unwrap_err();
    match &e {
        FrontendError::MissingInput { node, input, .. } => {
            assert!(node.contains("add") && node.contains("Add"), "{node}");
            assert_eq!(input, "w");
        }
        other => panic!("wrong error: {other}"),
    }
    assert!(
        e.to_string().contains("missing initializer or producer"),
        "{e}"
    );
}

#[test]
fn missing_graph_output_is_refused() {
    let mut m = small_model();
    if let Some(g) = m.graph.as_mut() {
        g.output.push(vi("nowhere", &[1]));
    }
    let e = load_bytes(&encode(&m)).unwrap_err();
    assert!(
        matches!(&e, FrontendError::MissingOutput { output, .. } if output == "nowhere"),
        "{e}"
    );
}

#[test]
fn graph_cycle_is_refused_naming_a_node_on_it() {
    let m = model(graph(
        vec![
            node("n1", "Add", &["x", "c"], &["a"]),
            node("n2", "Relu", &["a"], &["b"]),
            node("n3", "Relu", &["b"], &["c"]),
            node("n4", "Relu", &["c"], &["y"]),
        ],
        vec![],
        vec![vi("x", &[1])],
        vec![vi("y", &[1])],
    ));
    let e = load_bytes(&encode(&m)).unwrap_err();
    match &e {
        FrontendError::Cycle { node, .. } => {
            assert!(
                ["n1", "n2", "n3"].iter().any(|n| node.contains(n)),
                "{node}"
            );
        }
        other => panic!("wrong error: {other}"),
    }
}

#[test]
fn unsorted_nodes_are_sorted() {
    let m = model(graph(
        vec![
            node("second", "Relu", &["a"], &["y"]),
            node("first", "Relu", &["x"], &["a"]),
        ],
        vec![],
        vec![vi("x", &[1])],
        vec![vi("y", &[1])],
    ));
    let m = load_bytes(&encode(&m)).expect("any order is accepted");
    assert_eq!(m.node_order(), &[1, 0]);
    let names: Vec<&str> = m.nodes().map(|n| n.name.as_str()).collect();
    assert_eq!(names, vec!["first", "second"]);
}

#[test]
fn duplicate_value_names_are_refused() {
    let m = model(graph(
        vec![
            node("p", "Relu", &["x"], &["y"]),
            node("q", "Neg", &["x"], &["y"]),
        ],
        vec![],
        vec![vi("x", &[1])],
        vec![vi("y", &[1])],
    ));
    let e = load_bytes(&encode(&m)).unwrap_err();
    match &e {
        FrontendError::DuplicateValue {
            value,
            first,
            second,
            ..
        } => {
            assert_eq!(value, "y");
            assert!(
                first.contains('p') && second.contains('q'),
                "{first} / {second}"
            );
        }
        other => panic!("wrong error: {other}"),
    }
}

#[test]
fn initializer_listed_as_input_is_not_a_duplicate() {
    let mut m = small_model();
    if let Some(g) = m.graph.as_mut() {
        g.input.push(vi("w", &[2, 3]));
    }
    let m = load_bytes(&encode(&m)).expect("initializer may be an input");
    assert_eq!(m.runtime_inputs().count(), 1);
}

#[test]
fn missing_ir_version_opset_or_graph_are_refused() {
    let mut m = small_model();
    m.ir_version = None;
    let e = load_bytes(&encode(&m)).unwrap_err();
    assert!(e.to_string().contains("ir_version"), "{e}");

    let mut m = small_model();
    m.opset_import.clear();
    let e = load_bytes(&encode(&m)).unwrap_err();
    assert!(e.to_string().contains("opset_import"), "{e}");

    let mut m = small_model();
    m.opset_import.push(OperatorSetIdProto {
        domain: "ai.onnx".into(),
        version: Some(13),
    });
    let e = load_bytes(&encode(&m)).unwrap_err();
    assert!(e.to_string().contains("more than once"), "{e}");

    let mut m = small_model();
    m.graph = None;
    let e = load_bytes(&encode(&m)).unwrap_err();
    assert!(e.to_string().contains("no graph"), "{e}");
}

#[test]
fn unknown_domain_is_refused() {
    let mut m = small_model();
    if let Some(g) = m.graph.as_mut() {
        g.node[1].domain = "com.example".into();
    }
    let e = load_bytes(&encode(&m)).unwrap_err();
    assert!(
        matches!(&e, FrontendError::UnknownDomain { domain, .. } if domain == "com.example"),
        "{e}"
    );
    m.opset_import.push(OperatorSetIdProto {
        domain: "com.example".into(),
        version: Some(1),
    });
    let m = load_bytes(&encode(&m)).expect("imported domain");
    assert_eq!(m.opset_version("com.example"), Some(1));
}

#[test]
fn subgraph_may_read_outer_values_and_orders_its_node() {
    // `if` reads `a` through its then-branch; `a` is produced by a node listed after it.
    let then_g = graph(
        vec![node("t", "Relu", &["a"], &["r"])],
        vec![],
        vec![],
        vec![vi("r", &[1])],
    );
    let else_g = graph(
        vec![node("e", "Neg", &["a"], &["r2"])],
        vec![],
        vec![],
        vec![vi("r2", &[1])],
    );
    let mut if_node = node("if", "If", &["cond"], &["y"]);
    if_node.attribute = vec![
        graph_attr("then_branch", then_g),
        graph_attr("else_branch", else_g),
    ];
    let m = model(graph(
        vec![if_node, node("mk", "Relu", &["x"], &["a"])],
        vec![],
        vec![vi("x", &[1]), vi("cond", &[])],
        vec![vi("y", &[1])],
    ));
    let m = load_bytes(&encode(&m)).expect("outer reads are fine");
    assert_eq!(m.node_order(), &[1, 0]);
}

#[test]
fn subgraph_reading_an_undefined_value_is_refused() {
    let then_g = graph(
        vec![node("t", "Relu", &["ghost"], &["r"])],
        vec![],
        vec![],
        vec![vi("r", &[1])],
    );
    let mut if_node = node("if", "If", &["cond"], &["y"]);
    if_node.attribute = vec![AttributeProto {
        ..graph_attr("then_branch", then_g)
    }];
    let m = model(graph(
        vec![if_node],
        vec![],
        vec![vi("cond", &[])],
        vec![vi("y", &[1])],
    ));
    let e = load_bytes(&encode(&m)).unwrap_err();
    assert!(
        matches!(&e, FrontendError::MissingInput { input, .. } if input == "ghost"),
        "{e}"
    );
}

fn with_init(t: TensorProto) -> Vec<u8> {
    let mut m = small_model();
    if let Some(g) = m.graph.as_mut() {
        g.initializer = vec![t];
    }
    encode(&m)
}

#[test]
fn raw_data_length_must_match_dims_and_dtype() {
    let mut t = f32_raw("w", &[2, 3], &[0.0; 6]);
    t.raw_data = t.raw_data.slice(..20);
    let e = load_bytes(&with_init(t)).unwrap_err();
    assert!(
        matches!(&e, FrontendError::BadData { tensor, .. } if tensor == "w"),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.contains("20") && msg.contains("24"), "{msg}");

    // Right byte count for f32[2,3], declared as INT64: 24 bytes but 48 needed.
    let mut t = f32_raw("w", &[2, 3], &[0.0; 6]);
    t.data_type = DataType::Int64 as i32;
    let e = load_bytes(&with_init(t)).unwrap_err();
    assert!(e.to_string().contains("48"), "{e}");
}

#[test]
fn negative_dimension_is_refused() {
    let t = f32_raw("w", &[-1, 3], &[0.0; 3]);
    let e = load_bytes(&with_init(t)).unwrap_err();
    assert!(
        matches!(&e, FrontendError::BadShape { tensor, .. } if tensor == "w"),
        "{e}"
    );
}

#[test]
fn external_data_outside_the_model_folder_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("model");
    std::fs::create_dir(&dir).expect("mkdir");
    write(root.path(), "secret.bin", &[0u8; 16]);
    for loc in [
        "../secret.bin",
        "/etc/passwd",
        "sub/../../secret.bin",
        "..\\secret.bin",
    ] {
        let p = write(
            &dir,
            "m.onnx",
            &with_init(external("w", &[2, 3], loc, None)),
        );
        let e = load_model(&p).unwrap_err();
        match &e {
            FrontendError::ExternalData {
                tensor, location, ..
            } => {
                assert_eq!(tensor, "w");
                assert_eq!(location, loc);
            }
            other => panic!("{loc}: wrong error: {other}"),
        }
    }
}

#[cfg(unix)]
#[test]
fn external_data_symlink_out_of_the_folder_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("model");
    std::fs::create_dir(&dir).expect("mkdir");
    let secret = write(root.path(), "secret.bin", &[0u8; 24]);
    std::os::unix::fs::symlink(&secret, dir.join("link.bin")).expect("symlink");
    let p = write(
        &dir,
        "m.onnx",
        &with_init(external("w", &[2, 3], "link.bin", None)),
    );
    let e = load_model(&p).unwrap_err();
    assert!(e.to_string().contains("outside the model's folder"), "{e}");
}

#[test]
fn external_data_beyond_the_file_end_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "w.bin", &[0u8; 32]);
    let p = write(
        dir.path(),
        "m.onnx",
        &with_init(external("w", &[2, 3], "w.bin", Some(16))),
    );
    let e = load_model(&p).unwrap_err();
    assert!(
        matches!(&e, FrontendError::ExternalData { tensor, .. } if tensor == "w"),
        "{e}"
    );
    assert!(e.to_string().contains("beyond the end"), "{e}");

    let p = write(
        dir.path(),
        "m2.onnx",
        &with_init(external("w", &[2, 3], "w.bin", Some(u64::MAX))),
    );
    assert!(load_model(&p).is_err());
}

#[test]
fn external_data_length_must_match() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "w.bin", &[0u8; 64]);
    let mut t = external("w", &[2, 3], "w.bin", None);
    t.external_data
        .push(dqc_frontend::onnx::proto::StringStringEntryProto {
            key: "length".into(),
            value: "8".into(),
        });
    let p = write(dir.path(), "m.onnx", &with_init(t));
    let e = load_model(&p).unwrap_err();
    assert!(e.to_string().contains("`length` is 8"), "{e}");
}

#[test]
fn missing_external_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(
        dir.path(),
        "m.onnx",
        &with_init(external("w", &[2, 3], "nope.bin", None)),
    );
    let e = load_model(&p).unwrap_err();
    assert!(
        matches!(&e, FrontendError::ExternalData { location, .. } if location == "nope.bin"),
        "{e}"
    );
}

#[test]
fn unsupported_initializer_dtype_is_named() {
    let t = TensorProto {
        name: "w".into(),
        dims: vec![1],
        data_type: DataType::String as i32,
        string_data: vec![b"hi".to_vec()],
        ..Default::default()
    };
    let e = load_bytes(&with_init(t)).unwrap_err();
    assert!(
        matches!(&e, FrontendError::UnsupportedDataType { tensor, .. } if tensor == "w"),
        "{e}"
    );
    assert!(e.to_string().contains("STRING"), "{e}");
}
