//! Every ONNX backend node conformance case loads, or fails with a clear error; every
//! `.pb` tensor decodes, or fails because its data type has no dqc dtype. Skipped with a
//! note when `shared/onnx-node` is not next to the checkout.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use dqc_frontend::FrontendError;
use dqc_frontend::onnx::testdata::{find_onnx_node_dir, load_case, load_tensor_file};
use dqc_frontend::onnx::{load_model, tensor_type};

fn cases() -> Option<Vec<PathBuf>> {
    let Some(root) = find_onnx_node_dir(Path::new(env!("CARGO_MANIFEST_DIR"))) else {
        eprintln!("note: shared/onnx-node not found next to the checkout; test skipped");
        return None;
    };
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("read shared/onnx-node")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    dirs.sort();
    Some(dirs)
}

fn kind(e: &FrontendError) -> &'static str {
    match e {
        FrontendError::Io { .. } => "Io",
        FrontendError::NotOnnx { .. } => "NotOnnx",
        FrontendError::NotTensor { .. } => "NotTensor",
        FrontendError::InvalidModel { .. } => "InvalidModel",
        FrontendError::DuplicateValue { .. } => "DuplicateValue",
        FrontendError::MissingInput { .. } => "MissingInput",
        FrontendError::MissingOutput { .. } => "MissingOutput",
        FrontendError::Cycle { .. } => "Cycle",
        FrontendError::UnknownDomain { .. } => "UnknownDomain",
        FrontendError::UnsupportedDataType { .. } => "UnsupportedDataType",
        FrontendError::BadShape { .. } => "BadShape",
        FrontendError::BadData { .. } => "BadData",
        FrontendError::ExternalData { .. } => "ExternalData",
        FrontendError::BadValueType { .. } => "BadValueType",
        FrontendError::BadCase { .. } => "BadCase",
        FrontendError::UnsupportedOp { .. } => "UnsupportedOp",
        FrontendError::Attribute { .. } => "Attribute",
        FrontendError::NodeInput { .. } => "NodeInput",
        FrontendError::OpType { .. } => "OpType",
        FrontendError::Fold { .. } => "Fold",
        FrontendError::Convert { .. } => "Convert",
        FrontendError::Verify { .. } => "Verify",
    }
}

#[test]
fn every_model_loads_or_fails_clearly() {
    let Some(dirs) = cases() else { return };
    assert!(dirs.len() > 1000, "only {} cases found", dirs.len());
    let mut ok = 0;
    let mut attr_tensors = 0;
    let mut value_types = 0;
    let mut panics = Vec::new();
    let mut failures: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for dir in &dirs {
        let path = dir.join("model.onnx");
        match catch_unwind(AssertUnwindSafe(|| load_model(&path))) {
            Ok(Ok(m)) => {
                assert!(!m.opsets().is_empty());
                assert_eq!(m.node_order().len(), m.graph().node.len());
                // Tensor attributes (Constant values and the like) convert too, or are
                // of a type dqc does not have.
                for n in m.nodes() {
                    for t in n.attribute.iter().filter_map(|a| a.t.as_ref()) {
                        match catch_unwind(AssertUnwindSafe(|| m.tensor(t))) {
                            Ok(Ok(_)) => attr_tensors += 1,
                            Ok(Err(FrontendError::UnsupportedDataType { .. })) => {}
                            Ok(Err(e)) => failures
                                .entry("attribute tensor")
                                .or_default()
                                .push(e.to_string()),
                            Err(_) => panics.push(format!("{} (attribute tensor)", path.display())),
                        }
                    }
                }
                // Declared input and output types convert, or have a type dqc lacks.
                for v in m.graph().input.iter().chain(m.outputs()) {
                    match tensor_type(v, m.path()) {
                        Ok(_) => value_types += 1,
                        Err(FrontendError::BadValueType { reason, .. })
                            if reason.contains("not supported") => {}
                        Err(e) => failures
                            .entry("value type")
                            .or_default()
                            .push(e.to_string()),
                    }
                }
                ok += 1;
            }
            Ok(Err(e)) => failures.entry(kind(&e)).or_default().push(e.to_string()),
            Err(_) => panics.push(path.display().to_string()),
        }
    }
    let failed: usize = failures.values().map(Vec::len).sum();
    println!(
        "onnx-node models: {ok} loaded, {failed} refused, {} panicked; {attr_tensors} attribute tensors and {value_types} value types converted",
        panics.len()
    );
    for (k, msgs) in &failures {
        println!("  {k}: {}", msgs.len());
        for m in msgs.iter().take(3) {
            println!("    {m}");
        }
    }
    assert!(panics.is_empty(), "panicked on {panics:?}");
    // The only legitimate refusals are element types dqc does not have.
    let other: Vec<&String> = failures
        .iter()
        .filter(|(k, _)| **k != "UnsupportedDataType")
        .flat_map(|(_, v)| v)
        .collect();
    assert!(other.is_empty(), "unexpected refusals: {other:#?}");
}

#[test]
fn every_pb_tensor_decodes_or_is_unsupported() {
    let Some(dirs) = cases() else { return };
    let mut ok = 0;
    let mut unsupported: BTreeMap<String, usize> = BTreeMap::new();
    let mut other = Vec::new();
    let mut panics = Vec::new();
    for dir in &dirs {
        let Ok(sets) = std::fs::read_dir(dir) else {
            continue;
        };
        for set in sets
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_dir())
        {
            let Ok(files) = std::fs::read_dir(&set) else {
                continue;
            };
            for file in files.filter_map(|e| e.ok()).map(|e| e.path()) {
                if file.extension().is_none_or(|x| x != "pb") {
                    continue;
                }
                match catch_unwind(AssertUnwindSafe(|| load_tensor_file(&file))) {
                    Ok(Ok(_)) => ok += 1,
                    Ok(Err(FrontendError::UnsupportedDataType { data_type, .. })) => {
                        *unsupported.entry(data_type).or_default() += 1
                    }
                    Ok(Err(e)) => other.push(e.to_string()),
                    Err(_) => panics.push(file.display().to_string()),
                }
            }
        }
    }
    let unsup: usize = unsupported.values().sum();
    println!(
        "onnx-node .pb tensors: {ok} decoded, {unsup} unsupported dtype, {} other errors, {} panicked",
        other.len(),
        panics.len()
    );
    for (t, n) in &unsupported {
        println!("  {t}: {n}");
    }
    assert!(panics.is_empty(), "panicked on {panics:?}");
    assert!(other.is_empty(), "unexpected errors: {other:#?}");
    assert!(ok > 3000, "only {ok} tensors decoded");
}

#[test]
fn abs_case_matches_hand_computation() {
    let Some(root) = find_onnx_node_dir(Path::new(env!("CARGO_MANIFEST_DIR"))) else {
        eprintln!("note: shared/onnx-node not found; test skipped");
        return;
    };
    let case = load_case(&root.join("test_abs")).expect("test_abs loads");
    assert_eq!(case.name, "test_abs");
    let node = case.model.nodes().next().expect("one node");
    assert_eq!(node.op_type, "Abs");
    let set = &case.data_sets[0];
    assert_eq!(set.inputs.len(), 1);
    assert_eq!(set.outputs.len(), 1);
    let (xn, x) = &set.inputs[0];
    let (yn, y) = &set.outputs[0];
    assert_eq!(xn, "x");
    assert_eq!(yn, "y");
    assert_eq!(x.shape(), &[3, 4, 5]);
    let want: Vec<f32> = x.to_f32_vec().iter().map(|v| v.abs()).collect();
    assert_eq!(y.to_f32_vec(), want);
}

#[test]
fn every_case_loads_with_named_tensors() {
    let Some(dirs) = cases() else { return };
    let (mut ok, mut unsupported) = (0, 0);
    for dir in &dirs {
        match load_case(dir) {
            Ok(case) => {
                let graph_inputs: Vec<&str> = case
                    .model
                    .graph()
                    .input
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect();
                let graph_outputs: Vec<&str> = case
                    .model
                    .outputs()
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect();
                for set in &case.data_sets {
                    for (name, _) in &set.inputs {
                        assert!(
                            graph_inputs.contains(&name.as_str()),
                            "{}: input {name}",
                            case.name
                        );
                    }
                    for (name, _) in &set.outputs {
                        assert!(
                            graph_outputs.contains(&name.as_str()),
                            "{}: output {name}",
                            case.name
                        );
                    }
                }
                ok += 1;
            }
            Err(FrontendError::UnsupportedDataType { .. }) => unsupported += 1,
            Err(e) => panic!("{e}"),
        }
    }
    println!(
        "onnx-node cases: {ok} loaded with their data, {unsupported} have an unsupported dtype"
    );
    assert!(ok > 1500);
}
