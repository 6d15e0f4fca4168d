//! Conformance of the contraction converters on the ONNX node cases.

mod ops_harness;

#[test]
fn contraction_conformance() {
    ops_harness::run_family(
        "contraction",
        &[
            "test_matmul",
            "test_gemm",
            "test_einsum",
            "test_matmulinteger",
        ],
        15,
    );
}

mod ops_build;

use std::collections::BTreeMap;

use ops_build::{attr_s, import, max_diff, one_node, ramp, run};

/// Naive einsum over explicit labels (no ellipsis): sum over every label assignment.
fn naive_einsum(eq: &str, ops: &[(&[u64], &[f32])]) -> (Vec<u64>, Vec<f32>) {
    let (lhs, out) = eq.split_once("->").expect("explicit");
    let terms: Vec<Vec<char>> = lhs.split(',').map(|t| t.chars().collect()).collect();
    let out: Vec<char> = out.chars().collect();
    let mut size = BTreeMap::new();
    for (t, (dims, _)) in terms.iter().zip(ops) {
        for (c, d) in t.iter().zip(dims.iter()) {
            size.insert(*c, *d);
        }
    }
    let labels: Vec<char> = size.keys().copied().collect();
    let out_dims: Vec<u64> = out.iter().map(|c| size[c]).collect();
    let mut res = vec![0.0f32; out_dims.iter().product::<u64>() as usize];
    let total: u64 = labels.iter().map(|c| size[c]).product();
    for flat in 0..total {
        let mut rem = flat;
        let mut val = BTreeMap::new();
        for c in labels.iter().rev() {
            val.insert(*c, rem % size[c]);
            rem /= size[c];
        }
        let index = |t: &[char], dims: &[u64]| -> usize {
            t.iter()
                .zip(dims)
                .fold(0u64, |acc, (c, d)| acc * d + val[c]) as usize
        };
        let mut p = 1.0f32;
        for (t, (dims, data)) in terms.iter().zip(ops) {
            p *= data[index(t, dims)];
        }
        res[index(&out, &out_dims)] += p;
    }
    (out_dims, res)
}

fn check_einsum(eq: &str, shapes: &[&[u64]]) {
    let datas: Vec<Vec<f32>> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| ramp(s.iter().product::<u64>() as usize, i as u32 + 1))
        .collect();
    let ops: Vec<(&[u64], &[f32])> = shapes
        .iter()
        .zip(&datas)
        .map(|(s, d)| (*s, d.as_slice()))
        .collect();
    let (out_dims, want) = naive_einsum(eq, &ops);
    let names = ["a", "b", "c"];
    let inputs: Vec<(&str, &[u64])> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| (names[i], *s))
        .collect();
    let m = one_node(
        "Einsum",
        12,
        &inputs,
        vec![],
        vec![attr_s("equation", eq)],
        &out_dims,
    );
    let feeds: Vec<(&[u64], Vec<f32>)> = shapes
        .iter()
        .zip(&datas)
        .map(|(s, d)| (*s, d.clone()))
        .collect();
    let got = run(&m, &feeds);
    assert!(max_diff(&got, &want) < 1e-4, "{eq}: {got:?} vs {want:?}");
}

#[test]
fn einsum_patterns_exporters_emit() {
    check_einsum("bhid,bhjd->bhij", &[&[2, 3, 4, 5], &[2, 3, 6, 5]]);
    check_einsum("bhij,bhjd->bhid", &[&[2, 3, 4, 6], &[2, 3, 6, 5]]);
    check_einsum("nhwpqc->nchpwq", &[&[1, 2, 3, 2, 2, 4]]);
    check_einsum("i,j->ij", &[&[3], &[4]]);
    check_einsum("ij,jk,kl->il", &[&[2, 3], &[3, 4], &[4, 2]]);
    check_einsum("bij->bj", &[&[2, 3, 4]]);
    check_einsum("ik,jk->ij", &[&[3, 5], &[4, 5]]);
}

#[test]
fn einsum_transpose_is_one_transpose() {
    let m = one_node(
        "Einsum",
        12,
        &[("a", &[1, 2, 3, 2, 2, 4])],
        vec![],
        vec![attr_s("equation", "nhwpqc->nchpwq")],
        &[1, 4, 2, 2, 3, 2],
    );
    let g = import(&m).expect("import");
    let ops: Vec<&str> = g.node_ids().map(|n| g.node(n).op.name()).collect();
    assert_eq!(
        ops.iter().filter(|o| **o == "transpose").count(),
        1,
        "{ops:?}"
    );
    assert!(!ops.contains(&"matmul"), "{ops:?}");
}

#[test]
fn einsum_diagonals() {
    check_einsum("ii->i", &[&[3, 3]]);
    check_einsum("ii->", &[&[3, 3]]);
    check_einsum("bii,bij->bj", &[&[2, 3, 3], &[2, 3, 4]]);
}

#[test]
fn einsum_diagonal_of_unequal_axes_is_refused_clearly() {
    let m = one_node(
        "Einsum",
        12,
        &[("a", &[3, 4])],
        vec![],
        vec![attr_s("equation", "ii->i")],
        &[3],
    );
    let e = import(&m).expect_err("diagonal");
    assert!(e.contains("diagonal") && e.contains("equation"), "{e}");
}
