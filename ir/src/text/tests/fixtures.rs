//! Graphs for the tests: one node of every op variant (and flag combination that changes
//! the operand count), constants of every dtype, and structural comparison.

use crate::DType;
use crate::graph::{Graph, NodeId, Value};
use crate::op::{
    BinaryOp, CoordTransform, GeluApprox, NearestRounding, Op, PadMode, ReduceOp, ResizeMode,
    StepSchedule, UnaryOp,
};
use crate::quant::QuantScheme;
use crate::shape::{Dim, Shape, TensorType};
use crate::tensor::Tensor;

fn t(dtype: DType, dims: &[Dim]) -> TensorType {
    TensorType::new(dtype, Shape(dims.to_vec()))
}

fn add(g: &mut Graph, op: Op, inputs: &[Value], name: &str) -> NodeId {
    match g.add_node(op, inputs, name) {
        Ok(id) => id,
        Err(e) => panic!("fixture node {name}: {e}"),
    }
}

fn v(id: NodeId) -> Value {
    Value::new(id, 0)
}

/// A constant of every dtype, with awkward values (negative zero, subnormals, extremes).
pub(super) fn constants() -> Vec<Tensor> {
    let f = |d: DType, vals: &[f32]| {
        Tensor::from_f32(d, vec![vals.len() as u64], vals).expect("fixture constant")
    };
    let i = |d: DType, shape: Vec<u64>, vals: &[i64]| {
        Tensor::from_i64(d, shape, vals).expect("fixture constant")
    };
    vec![
        f(
            DType::F32,
            &[
                1.0,
                -0.0,
                3.5,
                1e-6,
                f32::MIN_POSITIVE / 8.0,
                f32::MAX,
                f32::INFINITY,
                f32::NEG_INFINITY,
                0.1,
            ],
        ),
        f(
            DType::F16,
            &[
                1.0,
                -0.0,
                65504.0,
                5.960_464_5e-8,
                f32::INFINITY,
                0.099_975_586,
            ],
        ),
        f(
            DType::BF16,
            &[
                1.0,
                -2.0,
                f32::from_bits(0x7f7f_0000),
                f32::from_bits(0x0001_0000),
            ],
        ),
        f(DType::F8E4M3, &[448.0, -0.001_953_125, 0.0, -0.0, 1.125]),
        f(
            DType::F8E5M2,
            &[57344.0, f32::NEG_INFINITY, 2f32.powi(-16), -3.0],
        ),
        f(DType::Fp4E2M1, &[0.5, -6.0, 1.5, -0.0, 3.0]),
        i(DType::I64, vec![4], &[i64::MIN, i64::MAX, -1, 0]),
        i(DType::I32, vec![3], &[i32::MIN as i64, i32::MAX as i64, 7]),
        i(DType::I8, vec![2, 2], &[-128, 127, 0, -5]),
        i(DType::U8, vec![3], &[0, 255, 128]),
        i(DType::I4, vec![5], &[-8, 7, 0, -1, 3]),
        i(DType::Bool, vec![3], &[1, 0, 1]),
        Tensor::scalar_f32(2.5),
        // f8e5m2 infinities, which `from_f32` would saturate.
        Tensor::from_bytes(DType::F8E5M2, vec![2], vec![0x7c, 0xfc].into()).expect("inf"),
        Tensor::zeros(DType::F32, vec![0, 3]).expect("empty"),
        f(DType::F8E4M3Fnuz, &[240.0, -0.000_976_562_5, 0.0, 1.125]),
        f(DType::F8E5M2Fnuz, &[57344.0, 2f32.powi(-17), -3.0]),
        // the FNUZ NaN code (0x80), which no finite value encodes to
        Tensor::from_bytes(DType::F8E4M3Fnuz, vec![1], vec![0x80].into()).expect("nan"),
    ]
}

/// A graph with every op variant. Not type-correct (the parser does not check types), but
/// every operand count matches its op. Some nodes carry type annotations.
pub(super) fn every_op() -> Graph {
    let b = Dim::sym("B");
    let mut g = Graph::new("every_op");
    let x = g.add_input("x", t(DType::F32, &[b.clone(), 4.into(), 8.into()]));
    let y = g.add_input("y", t(DType::F32, &[b.clone(), 4.into(), 8.into()]));
    let c = g.add_input(
        "onnx::cond/1",
        t(DType::Bool, &[b.clone(), 4.into(), 8.into()]),
    );

    for (k, tensor) in constants().into_iter().enumerate() {
        let id = add(&mut g, Op::Constant(tensor.clone()), &[], &format!("k{k}"));
        if k % 2 == 0 {
            g.set_types(id, vec![tensor.ty()]);
        }
    }
    for u in UnaryOp::ALL {
        add(&mut g, Op::Unary(u), &[x], u.name());
    }
    for bo in BinaryOp::ALL {
        add(&mut g, Op::Binary(bo), &[x, y], bo.name());
    }
    let w = add(&mut g, Op::Where, &[c, x, y], "where");
    g.set_types(w, vec![t(DType::F32, &[b.clone(), 4.into(), 8.into()])]);
    add(&mut g, Op::Cast { to: DType::F8E4M3 }, &[x], "cast");
    add(&mut g, Op::Modulate, &[x, y, y], "modulate");
    add(&mut g, Op::MatMul, &[x, y], "matmul");
    for has_c in [false, true] {
        let ins: &[Value] = if has_c { &[x, y, y] } else { &[x, y] };
        add(
            &mut g,
            Op::Gemm {
                alpha: 0.5,
                beta: -1e-3,
                trans_a: has_c,
                trans_b: !has_c,
                has_c,
            },
            ins,
            "gemm",
        );
    }
    for has_bias in [false, true] {
        let ins: &[Value] = if has_bias { &[x, y, y] } else { &[x, y] };
        add(
            &mut g,
            Op::Conv {
                strides: vec![1, 2],
                pads: vec![0, 1, 0, 1],
                dilations: vec![1, 1],
                groups: 2,
                has_bias,
            },
            ins,
            "conv",
        );
    }
    add(
        &mut g,
        Op::LayerNorm {
            axis: -1,
            eps: 1e-6,
            affine: false,
        },
        &[x],
        "ln",
    );
    add(
        &mut g,
        Op::LayerNorm {
            axis: 2,
            eps: 1e-5,
            affine: true,
        },
        &[x, y, y],
        "ln_affine",
    );
    add(
        &mut g,
        Op::RmsNorm {
            axis: -1,
            eps: 1e-6,
            affine: false,
        },
        &[x],
        "rms",
    );
    add(
        &mut g,
        Op::RmsNorm {
            axis: -2,
            eps: 3e-7,
            affine: true,
        },
        &[x, y],
        "rms_affine",
    );
    add(
        &mut g,
        Op::GroupNorm {
            groups: 32,
            eps: 1e-5,
            affine: true,
        },
        &[x, y, y],
        "gn",
    );
    add(
        &mut g,
        Op::GroupNorm {
            groups: 1,
            eps: 1e-5,
            affine: false,
        },
        &[x],
        "gn_plain",
    );
    add(&mut g, Op::Softmax { axis: -1 }, &[x], "softmax");
    add(
        &mut g,
        Op::Gelu {
            approx: GeluApprox::Erf,
        },
        &[x],
        "gelu",
    );
    add(
        &mut g,
        Op::Gelu {
            approx: GeluApprox::Tanh,
        },
        &[x],
        "gelu_tanh",
    );
    add(&mut g, Op::Silu, &[x], "silu");
    add(
        &mut g,
        Op::Attention {
            heads: 16,
            kv_heads: 4,
            scale: None,
            causal: true,
            has_mask: false,
        },
        &[x, y, y],
        "attn",
    );
    add(
        &mut g,
        Op::Attention {
            heads: 8,
            kv_heads: 8,
            scale: Some(0.125),
            causal: false,
            has_mask: true,
        },
        &[x, y, y, c],
        "attn_mask",
    );
    for (has_d, has_z) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut ins = vec![x, y, y, y, y];
        if has_d {
            ins.push(y);
        }
        if has_z {
            ins.push(x);
        }
        add(
            &mut g,
            Op::SelectiveScan {
                delta_softplus: has_d,
                has_d,
                has_z,
            },
            &ins,
            "scan",
        );
    }
    for r in ReduceOp::ALL {
        add(
            &mut g,
            Op::Reduce {
                op: r,
                axes: vec![-1, 0],
                keepdims: true,
            },
            &[x],
            r.name(),
        );
    }
    add(
        &mut g,
        Op::Reduce {
            op: ReduceOp::Sum,
            axes: vec![],
            keepdims: false,
        },
        &[x],
        "sum_all",
    );
    add(
        &mut g,
        Op::ArgReduce {
            max: true,
            axis: 1,
            keepdims: false,
        },
        &[x],
        "argmax",
    );
    add(
        &mut g,
        Op::ArgReduce {
            max: false,
            axis: -1,
            keepdims: true,
        },
        &[x],
        "argmin",
    );
    add(
        &mut g,
        Op::CumSum {
            axis: 0,
            exclusive: true,
            reverse: false,
        },
        &[x],
        "cumsum",
    );
    let two_b = b.checked_mul(&Dim::fixed(2)).expect("dim");
    let bn = b
        .checked_mul(&Dim::sym("N"))
        .expect("dim")
        .checked_mul(&Dim::sym("N"))
        .expect("dim");
    let odd = Dim::sym("seq len")
        .checked_mul(&Dim::fixed(3))
        .expect("dim");
    let r = add(
        &mut g,
        Op::Reshape {
            shape: Shape(vec![
                two_b.clone(),
                16.into(),
                bn.clone(),
                odd,
                Dim::sym("nan"),
            ]),
        },
        &[x],
        "reshape",
    );
    g.set_types(r, vec![t(DType::F32, &[two_b, 16.into(), bn])]);
    add(
        &mut g,
        Op::Transpose {
            perm: vec![0, 2, 1],
        },
        &[x],
        "transpose",
    );
    add(
        &mut g,
        Op::Slice {
            axes: vec![1, -1],
            starts: vec![0, -3],
            ends: vec![i64::MAX, i64::MIN],
            steps: vec![1, -2],
        },
        &[x],
        "slice",
    );
    add(&mut g, Op::Concat { axis: 1 }, &[x, y, x], "concat");
    add(&mut g, Op::Concat { axis: 0 }, &[x], "concat1");
    let s = add(
        &mut g,
        Op::Split {
            axis: 2,
            sizes: vec![2, 2, 4],
        },
        &[x],
        "split",
    );
    g.set_types(
        s,
        vec![
            t(DType::F32, &[b.clone(), 4.into(), 2.into()]),
            t(DType::F32, &[b.clone(), 4.into(), 2.into()]),
            t(DType::F32, &[b.clone(), 4.into(), 4.into()]),
        ],
    );
    add(&mut g, Op::Gather { axis: 0 }, &[x, y], "gather");
    add(
        &mut g,
        Op::Expand {
            shape: Shape(vec![b.clone(), 4.into(), 8.into()]),
        },
        &[x],
        "expand",
    );
    add(
        &mut g,
        Op::Expand {
            shape: Shape::scalar(),
        },
        &[x],
        "expand0",
    );
    for (k, mode) in [
        PadMode::Constant(-0.5),
        PadMode::Constant(0.0),
        PadMode::Reflect,
        PadMode::Edge,
    ]
    .into_iter()
    .enumerate()
    {
        add(
            &mut g,
            Op::Pad {
                pads: vec![0, 1, 2, 0, 1, 2],
                mode,
            },
            &[x],
            &format!("pad{k}"),
        );
    }
    let modes = [
        ResizeMode::Nearest(NearestRounding::RoundPreferFloor),
        ResizeMode::Nearest(NearestRounding::RoundPreferCeil),
        ResizeMode::Nearest(NearestRounding::Floor),
        ResizeMode::Nearest(NearestRounding::Ceil),
        ResizeMode::Linear,
    ];
    let coords = [
        CoordTransform::HalfPixel,
        CoordTransform::Asymmetric,
        CoordTransform::AlignCorners,
    ];
    for (k, mode) in modes.into_iter().enumerate() {
        add(
            &mut g,
            Op::Resize {
                size: Shape(vec![b.clone(), 8.into(), 16.into()]),
                mode,
                coord: coords[k % 3],
            },
            &[x],
            "resize",
        );
    }
    let schemes = [
        QuantScheme::PerTensor,
        QuantScheme::PerChannel { axis: 0 },
        QuantScheme::PerGroup { axis: 1, size: 64 },
        QuantScheme::Nvfp4 { axis: -1 },
        QuantScheme::Mx { axis: -1 },
    ];
    for scheme in schemes {
        let zps: &[bool] = if scheme.allows_zero_point() {
            &[false, true]
        } else {
            &[false]
        };
        for &zp in zps {
            let q = Op::Quantize {
                dtype: if scheme.block_size().is_some()
                    && !matches!(scheme, QuantScheme::PerGroup { .. })
                {
                    DType::Fp4E2M1
                } else {
                    DType::I8
                },
                scheme,
                has_zero_point: zp,
            };
            let n = q.num_inputs().expect("fixed arity");
            let ins: Vec<Value> = std::iter::once(x)
                .chain(std::iter::repeat_n(y, n - 1))
                .collect();
            add(&mut g, q, &ins, "q");
            let dq = Op::Dequantize {
                scheme,
                has_zero_point: zp,
                out: DType::BF16,
            };
            let n = dq.num_inputs().expect("fixed arity");
            add(&mut g, dq, &vec![x; n], "dq");
        }
        for a_scheme in [None, Some(scheme)] {
            let qm = Op::QMatMul {
                a_scheme,
                b_scheme: scheme,
                out: DType::F16,
            };
            let n = qm.num_inputs().expect("fixed arity");
            add(&mut g, qm, &vec![y; n], "qmm");
        }
    }
    let cr = add(
        &mut g,
        Op::CacheRead {
            slot: "block \"0\"\n".to_string(),
            ty: t(DType::BF16, &[b.clone(), 4.into(), 8.into()]),
        },
        &[],
        "cached",
    );
    add(
        &mut g,
        Op::CacheWrite {
            slot: "block \"0\"\n".to_string(),
        },
        &[x],
        "cw",
    );
    let mut last = x;
    for (k, schedule) in [
        StepSchedule::Always,
        StepSchedule::Every {
            period: 2,
            warmup: 1,
        },
        StepSchedule::Steps(vec![0, 3, 5]),
        StepSchedule::Steps(vec![]),
    ]
    .into_iter()
    .enumerate()
    {
        last = v(add(
            &mut g,
            Op::StepGate { schedule },
            &[last, v(cr)],
            &format!("gate{k}"),
        ));
    }
    let split1 = Value::new(s, 1);
    g.set_outputs(vec![last, split1, x, last]);
    g
}

/// Assert that two graphs are the same: name, signature, and statement by statement
/// (in topological order) the same op (constants bitwise), names, operands and types.
pub(super) fn assert_same(a: &Graph, b: &Graph) {
    assert_eq!(a.name, b.name, "graph name");
    let sig = |g: &Graph| -> Vec<(String, Op)> {
        g.inputs()
            .iter()
            .map(|&id| (g.node(id).name().to_string(), g.node(id).op.clone()))
            .collect()
    };
    assert_eq!(sig(a), sig(b), "signature");
    type Stmt = (Vec<String>, Op, Vec<String>, Vec<TensorType>);
    let body = |g: &Graph| -> Vec<Stmt> {
        g.topo_order()
            .expect("acyclic")
            .into_iter()
            .map(|id| {
                let n = g.node(id);
                (
                    n.output_names().to_vec(),
                    n.op.clone(),
                    n.inputs()
                        .iter()
                        .map(|v| g.value_name(*v).to_string())
                        .collect(),
                    n.output_types().to_vec(),
                )
            })
            .collect()
    };
    let (ba, bb) = (body(a), body(b));
    assert_eq!(ba.len(), bb.len(), "node count");
    for (x, y) in ba.iter().zip(&bb) {
        assert_eq!(x, y);
    }
    let outs = |g: &Graph| -> Vec<String> {
        g.outputs()
            .iter()
            .map(|v| g.value_name(*v).to_string())
            .collect()
    };
    assert_eq!(outs(a), outs(b), "outputs");
}
