//! The pass manager: names, switches, dumps, the verifier and the signature check after
//! every pass.

use dqc_ir::graph::Value;
use dqc_ir::op::UnaryOp;
use dqc_ir::{Graph, Op};
use dqc_passes::{Pass, PassError, PassOptions, Pipeline};

fn small() -> Graph {
    let src = "graph @g(%x: f32[B,4]) -> (f32[B,4]) {\n  %s = sigmoid(%x)\n  %y = mul(%x, %s)\n  return %y\n}\n";
    dqc_ir::text::parse(src, None).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn standard_order() {
    assert_eq!(
        Pipeline::standard().names(),
        vec!["canonicalize", "recognize", "fuse-prep"]
    );
}

#[test]
fn unknown_names_are_refused_with_the_valid_list() {
    let mut g = small();
    let mut opts = PassOptions::default();
    opts.dump_after.insert("recognise".into());
    let e = Pipeline::standard().run(&mut g, &opts).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            PassError::UnknownPass {
                option: "dump_after",
                ..
            }
        ),
        "{e:?}"
    );
    for want in ["recognise", "canonicalize", "recognize", "fuse-prep"] {
        assert!(msg.contains(want), "{msg}");
    }
    let mut opts = PassOptions::default();
    opts.disabled.insert("nope".into());
    let e = Pipeline::standard().run(&mut g, &opts).unwrap_err();
    assert!(
        matches!(
            e,
            PassError::UnknownPass {
                option: "disabled",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn dumps_and_switches() {
    let mut g = small();
    let mut opts = PassOptions::default();
    opts.dump_after.insert("recognize".into());
    opts.disabled.insert("fuse-prep".into());
    let report = Pipeline::standard()
        .run(&mut g, &opts)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.dumps.len(), 1);
    let (pass, text) = &report.dumps[0];
    assert_eq!(pass, "recognize");
    assert!(text.contains("silu(%x)"), "{text}");
    let names: Vec<(&str, bool, bool)> = report
        .passes
        .iter()
        .map(|p| (p.name.as_str(), p.enabled, p.changed))
        .collect();
    assert_eq!(
        names,
        vec![
            ("canonicalize", true, false),
            ("recognize", true, true),
            ("fuse-prep", false, false)
        ]
    );
    // With recognize disabled, nothing changes.
    let mut g = small();
    let mut opts = PassOptions::default();
    opts.disabled.insert("recognize".into());
    let report = Pipeline::standard()
        .run(&mut g, &opts)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.passes.iter().all(|p| !p.changed));
    assert!(dqc_ir::text::print(&g).contains("sigmoid"));
}

/// A pass that breaks the graph in a chosen way.
struct Breaker(&'static str);

impl Pass for Breaker {
    fn name(&self) -> &'static str {
        "breaker"
    }
    fn enabled(&self, _opts: &PassOptions) -> bool {
        true
    }
    fn run(&self, graph: &mut Graph, _opts: &PassOptions) -> Result<bool, PassError> {
        let x = graph.input_values()[0];
        match self.0 {
            // An output of another type: a reduction to a scalar.
            "signature" => {
                let id = graph
                    .add_node(
                        Op::Reduce {
                            op: dqc_ir::op::ReduceOp::Sum,
                            axes: vec![],
                            keepdims: false,
                        },
                        &[x],
                        "r",
                    )
                    .unwrap_or_else(|e| panic!("{e}"));
                graph.set_outputs(vec![Value::new(id, 0)]);
            }
            // A node the verifier refuses (erf of a bool comparison result).
            _ => {
                let c = graph
                    .add_node(Op::Binary(dqc_ir::op::BinaryOp::Less), &[x, x], "c")
                    .unwrap_or_else(|e| panic!("{e}"));
                let id = graph
                    .add_node(Op::Unary(UnaryOp::Erf), &[Value::new(c, 0)], "bad")
                    .unwrap_or_else(|e| panic!("{e}"));
                graph.set_outputs(vec![Value::new(id, 0)]);
            }
        }
        Ok(true)
    }
}

#[test]
fn verifier_and_signature_errors_name_the_pass() {
    let mut g = small();
    let e = Pipeline::new(vec![Box::new(Breaker("verify"))])
        .run(&mut g, &PassOptions::default())
        .unwrap_err();
    assert!(
        matches!(&e, PassError::Verify { pass, .. } if pass == "breaker"),
        "{e:?}"
    );
    let mut g = small();
    let e = Pipeline::new(vec![Box::new(Breaker("signature"))])
        .run(&mut g, &PassOptions::default())
        .unwrap_err();
    assert!(
        matches!(&e, PassError::Signature { pass, .. } if pass == "breaker"),
        "{e:?}"
    );
    assert!(e.to_string().contains("f32[B,4]"), "{e}");
}

#[test]
fn an_invalid_input_graph_is_reported_as_input() {
    let mut g = small();
    let x = g.input_values()[0];
    let c = g
        .add_node(Op::Binary(dqc_ir::op::BinaryOp::Less), &[x, x], "c")
        .unwrap_or_else(|e| panic!("{e}"));
    let bad = g
        .add_node(Op::Unary(UnaryOp::Erf), &[Value::new(c, 0)], "bad")
        .unwrap_or_else(|e| panic!("{e}"));
    g.set_outputs(vec![Value::new(bad, 0)]);
    let e = Pipeline::standard()
        .run(&mut g, &PassOptions::default())
        .unwrap_err();
    assert!(
        matches!(&e, PassError::Verify { pass, .. } if pass == "input"),
        "{e:?}"
    );
}

#[test]
fn every_rule_set_builds() {
    assert!(dqc_passes::egraph::Recognize::rules().len() > 30);
    assert!(!dqc_passes::egraph::FusePrep::rules().is_empty());
}

#[test]
fn runs_are_bounded() {
    // A tiny node limit stops the runner early; the result still verifies.
    let mut g = small();
    let mut opts = PassOptions::default();
    opts.egraph.node_limit = 1;
    opts.egraph.iter_limit = 1;
    Pipeline::standard()
        .run(&mut g, &opts)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn folding_respects_its_limit_and_leaves_quantization_alone() {
    let src = "graph @g(%x: f32[4]) -> (f32[4], f32[4]) {
  %a = constant() {value = dense<f32[4]> [1, 2, 3, 4]}
  %b = neg(%a)
  %q = constant() {value = dense<i8[4]> [1, 2, 3, 4]}
  %s = constant() {value = dense<f32[]> [0.5]}
  %d = dequantize(%q, %s) {scheme = per_tensor, has_zero_point = false, out = f32}
  %y = add(%x, %b)
  %z = add(%x, %d)
  return %y, %z
}
";
    let parse = || dqc_ir::text::parse(src, None).unwrap_or_else(|e| panic!("{e}"));
    let mut g = parse();
    let opts = PassOptions {
        disabled: ["recognize", "fuse-prep"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ..PassOptions::default()
    };
    Pipeline::standard()
        .run(&mut g, &opts)
        .unwrap_or_else(|e| panic!("{e}"));
    let text = dqc_ir::text::print(&g);
    assert!(!text.contains("neg("), "{text}");
    assert!(
        text.contains("%b = constant() {value = dense<f32[4]> [-1, -2, -3, -4]}"),
        "{text}"
    );
    assert!(text.contains("dequantize("), "{text}");
    // A limit below the result size keeps the node.
    let mut g = parse();
    let opts = PassOptions {
        fold_max_elements: 3,
        ..opts
    };
    Pipeline::standard()
        .run(&mut g, &opts)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(dqc_ir::text::print(&g).contains("neg("));
}

#[test]
fn gpu_targets_recognize_too() {
    let src = "graph @g(%x: f32[B,4]) -> (f32[B,4]) {\n  %s = sigmoid(%x)\n  %y = mul(%s, %x)\n  return %y\n}\n";
    for target in dqc_ir::target::valid_names() {
        let mut g = dqc_ir::text::parse(src, None).unwrap_or_else(|e| panic!("{e}"));
        let t = dqc_ir::Target::parse(target).unwrap_or_else(|e| panic!("{e}"));
        Pipeline::standard()
            .run(&mut g, &PassOptions::for_target(t))
            .unwrap_or_else(|e| panic!("{target}: {e}"));
        assert!(dqc_ir::text::print(&g).contains("silu(%x)"), "{target}");
    }
}
