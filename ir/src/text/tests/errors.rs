//! Every kind of parse error, with its exact position.

use std::collections::HashMap;

use crate::DType;
use crate::tensor::Tensor;
use crate::text::{ParseError, ParseErrorKind, WeightStore, parse};

const HEAD: &str = "graph @g(%x: f32[2]) -> (?) {\n";

/// Parse a body between `HEAD` and `return %x }` and expect an error.
fn err_with(body: &str, weights: Option<&dyn WeightStore>) -> ParseError {
    let src = format!("{HEAD}{body}\n  return %x\n}}\n");
    match parse(&src, weights) {
        Ok(_) => panic!("expected an error for\n{src}"),
        Err(e) => e,
    }
}

fn err(body: &str) -> ParseError {
    err_with(body, None)
}

fn at(e: &ParseError) -> (usize, usize) {
    (e.line, e.column)
}

#[test]
fn syntax_error_says_what_was_expected() {
    let e = err("  %y neg(%x)");
    assert_eq!(at(&e), (2, 6), "{e}");
    let ParseErrorKind::Syntax { expected } = &*e.kind else {
        panic!("{e}")
    };
    assert!(
        expected.contains("`=`") && expected.contains("`,`"),
        "{expected}"
    );
    assert_eq!(e.snippet, "  %y neg(%x)\n     ^");
    assert!(e.to_string().starts_with("2:6: expected one of "), "{e}");
}

#[test]
fn syntax_error_missing_return() {
    let src = "graph @g(%x: f32[2]) -> (?) {\n  %y = neg(%x)\n}\n";
    let e = parse(src, None).expect_err("no return");
    assert_eq!(at(&e), (3, 1), "{e}");
    let ParseErrorKind::Syntax { expected } = &*e.kind else {
        panic!("{e}")
    };
    assert!(expected.contains("`return`"), "{expected}");
}

#[test]
fn syntax_error_column_counts_characters() {
    // `é` is two bytes but one column.
    let e = err("  %\"é\" = neg(%x) ]");
    assert_eq!(at(&e), (2, 18), "{e}");
}

#[test]
fn unknown_op() {
    let e = err("  %y = frobnicate(%x)");
    assert_eq!(at(&e), (2, 8));
    assert_eq!(
        *e.kind,
        ParseErrorKind::UnknownOp {
            name: "frobnicate".into()
        }
    );
    let e = err("  %y = input()");
    assert!(matches!(*e.kind, ParseErrorKind::UnknownOp { .. }), "{e}");
}

#[test]
fn unknown_dtype() {
    let e = parse("graph @g(%x: f31[2]) -> (?) {\n  return %x\n}", None).expect_err("bad dtype");
    assert_eq!(at(&e), (1, 14));
    assert_eq!(*e.kind, ParseErrorKind::UnknownDType { name: "f31".into() });
}

#[test]
fn used_before_definition_and_undefined() {
    let e = err("  %y = neg(%z)\n  %z = neg(%x)");
    assert_eq!(at(&e), (2, 12));
    assert_eq!(
        *e.kind,
        ParseErrorKind::UsedBeforeDefinition { name: "z".into() }
    );
    assert!(e.to_string().contains("used before its definition"));
    let e = err("  %y = neg(%nope)");
    assert_eq!(at(&e), (2, 12));
    assert_eq!(
        *e.kind,
        ParseErrorKind::Undefined {
            name: "nope".into()
        }
    );
    assert!(e.to_string().contains("is not defined"));
    // In `return`.
    let e = parse("graph @g(%x: f32[2]) -> (?) {\n  return %q\n}", None).expect_err("undefined");
    assert_eq!(at(&e), (2, 10));
}

#[test]
fn duplicate_names() {
    let e = err("  %x = neg(%x)");
    assert_eq!(at(&e), (2, 3));
    assert_eq!(
        *e.kind,
        ParseErrorKind::DuplicateName {
            name: "x".into(),
            first_line: 1
        }
    );
    let e = err("  %a, %a = split(%x) {axis = 0, sizes = [1, 1]}");
    assert_eq!(at(&e), (2, 7));
    let e = parse(
        "graph @g(%x: f32[2], %x: f32[2]) -> (?) {\n  return %x\n}",
        None,
    )
    .expect_err("dup");
    assert_eq!(at(&e), (1, 22));
}

#[test]
fn attribute_errors() {
    let e = err("  %y = softmax(%x) {axes = 1}");
    assert_eq!(at(&e), (2, 21));
    assert_eq!(
        *e.kind,
        ParseErrorKind::UnknownAttribute {
            op: "softmax".into(),
            name: "axes".into(),
            expected: "axis".into()
        }
    );
    let e = err("  %y = softmax(%x)");
    assert_eq!(at(&e), (2, 8));
    assert_eq!(
        *e.kind,
        ParseErrorKind::MissingAttribute {
            op: "softmax".into(),
            name: "axis".into()
        }
    );
    let e = err("  %y = softmax(%x) {axis = 1.5}");
    assert_eq!(at(&e), (2, 28));
    assert!(
        matches!(&*e.kind, ParseErrorKind::AttributeType { name, found, .. } if name == "axis" && found == "`1.5`"),
        "{e}"
    );
    let e = err("  %y = softmax(%x) {axis = 1, axis = 2}");
    assert_eq!(at(&e), (2, 31));
    assert!(
        matches!(*e.kind, ParseErrorKind::DuplicateAttribute { .. }),
        "{e}"
    );
    // A mistyped element inside a list points at the element.
    let e = err("  %y = transpose(%x) {perm = [0, -1]}");
    assert_eq!(at(&e), (2, 34));
    let e = err("  %y = neg(%x) {axis = 0}");
    assert!(
        matches!(&*e.kind, ParseErrorKind::UnknownAttribute { expected, .. } if expected == "none"),
        "{e}"
    );
    let e = err("  %y = step_gate(%x, %x) {schedule = every(period = 2)}");
    assert_eq!(at(&e), (2, 38));
    let e = err(
        "  %q = quantize(%x, %x) {dtype = i8, scheme = per_block(axis = 0), has_zero_point = false}",
    );
    assert_eq!(at(&e), (2, 47));
}

#[test]
fn operand_and_result_counts() {
    let e = err("  %y = add(%x)");
    assert_eq!(at(&e), (2, 12));
    assert_eq!(
        *e.kind,
        ParseErrorKind::OperandCount {
            op: "add".into(),
            expected: "2".into(),
            actual: 1
        }
    );
    let e = err("  %y = layer_norm(%x) {axis = -1, eps = 1e-5, affine = true}");
    assert!(
        matches!(&*e.kind, ParseErrorKind::OperandCount { expected, .. } if expected == "3"),
        "{e}"
    );
    let e = err("  %y = concat() {axis = 0}");
    assert!(
        matches!(&*e.kind, ParseErrorKind::OperandCount { expected, .. } if expected == "at least 1"),
        "{e}"
    );
    let e = err("  %a, %b = neg(%x)");
    assert_eq!(at(&e), (2, 3));
    assert_eq!(
        *e.kind,
        ParseErrorKind::ResultCount {
            op: "neg".into(),
            expected: 1,
            actual: 2
        }
    );
    let e = err("  %y = neg(%x) : f32[2], f32[2]");
    assert_eq!(at(&e), (2, 16));
    assert_eq!(
        *e.kind,
        ParseErrorKind::AnnotationCount {
            expected: 1,
            actual: 2
        }
    );
}

#[test]
fn return_errors() {
    let e = parse("graph @g(%x: f32[2]) -> (?, ?) {\n  return %x\n}", None).expect_err("count");
    assert_eq!(at(&e), (2, 3));
    assert_eq!(
        *e.kind,
        ParseErrorKind::ReturnCount {
            expected: 2,
            actual: 1
        }
    );
    let e = parse("graph @g(%x: f32[2]) -> (f32[3]) {\n  return %x\n}", None).expect_err("type");
    assert_eq!(at(&e), (2, 10));
    assert!(
        matches!(*e.kind, ParseErrorKind::ReturnType { index: 0, .. }),
        "{e}"
    );
}

#[test]
fn constant_errors() {
    let e = err("  %w = constant() {value = dense<f32[3]> [1, 2]}");
    assert_eq!(at(&e), (2, 28));
    assert_eq!(
        *e.kind,
        ParseErrorKind::DenseCount {
            ty: "f32[3]".into(),
            expected: 3,
            actual: 2
        }
    );
    let e = err("  %w = constant() {value = dense<f16[1]> [0.1]}");
    assert_eq!(at(&e), (2, 43));
    assert_eq!(
        *e.kind,
        ParseErrorKind::DenseValue {
            value: "0.1".into(),
            dtype: "f16".into()
        }
    );
    let e = err("  %w = constant() {value = dense<i4[2]> [7, 8]}");
    assert_eq!(at(&e), (2, 45));
    let e = err("  %w = constant() {value = dense<i64[1]> [1.5]}");
    assert_eq!(at(&e), (2, 43));
    let e = err("  %w = constant() {value = dense<fp4e2m1[1]> [nan]}");
    assert_eq!(at(&e), (2, 47));
    let e = err("  %w = constant() {value = dense<f32[B]> []}");
    assert!(
        matches!(*e.kind, ParseErrorKind::ConstantShape { .. }),
        "{e}"
    );
}

#[test]
fn external_errors() {
    let body = "  %w = constant() {value = external<f32[2]> \"w\"}";
    let e = err(body);
    assert_eq!(at(&e), (2, 28));
    assert_eq!(*e.kind, ParseErrorKind::NoWeights { key: "w".into() });
    let empty: HashMap<String, Tensor> = HashMap::new();
    let e = err_with(body, Some(&empty));
    assert_eq!(at(&e), (2, 28));
    assert_eq!(*e.kind, ParseErrorKind::ExternalMissing { key: "w".into() });
    let mut wrong = HashMap::new();
    wrong.insert(
        "w".to_string(),
        Tensor::zeros(DType::F16, vec![2]).expect("zeros"),
    );
    let e = err_with(body, Some(&wrong));
    assert_eq!(
        *e.kind,
        ParseErrorKind::ExternalType {
            key: "w".into(),
            declared: "f32[2]".into(),
            actual: "f16[2]".into()
        }
    );
}

#[test]
fn bad_strings() {
    let e = err("  %\"a\\u{d800}\" = neg(%x)");
    assert_eq!(at(&e), (2, 6));
    assert!(matches!(*e.kind, ParseErrorKind::BadEscape(_)), "{e}");
    // An unknown escape is a syntax error after the backslash.
    let e = err("  %\"a\\q\" = neg(%x)");
    assert_eq!(at(&e), (2, 7), "{e}");
    let e = err("  %\"\" = neg(%x)");
    assert_eq!(*e.kind, ParseErrorKind::EmptyName);
}

#[test]
fn trailing_input() {
    let e =
        parse("graph @g(%x: f32[2]) -> (?) {\n  return %x\n} extra", None).expect_err("trailing");
    assert_eq!(at(&e), (3, 3));
    assert_eq!(
        *e.kind,
        ParseErrorKind::Syntax {
            expected: "end of input".into()
        }
    );
}
