//! The executor's buffer plumbing (inputs, weights, arena activations, aliases, outputs,
//! per-binding compilation), checked with a tiny interpreter in place of Cranelift.

use super::*;
use crate::bind::bind_inputs;
use crate::plan::{PlanParts, Provenance, plan_bytes};
use dqc_codegen::spec::{
    Buffer, Elementwise, Expr, Exprs, IndexMap, Kernel, KernelSpec, Scalar, Symbol, Term, eval_poly,
};
use dqc_ir::op::BinaryOp;
use dqc_ir::{DType, Dim, Shape};

/// Interprets f32 elementwise kernels of loads, float constants and add/mul/max.
struct Interp;

struct Prog {
    program: Program,
    bindings: Bindings,
}

fn unsupported(what: &str) -> CpuError {
    CpuError::Unsupported {
        kernel: "test".into(),
        what: what.into(),
    }
}

impl Backend for Interp {
    type Compiled = Prog;
    fn compile(
        program: &Program,
        bindings: &Bindings,
        _release: Option<dqc_codegen::cpu::WeightRelease>,
    ) -> Result<Prog, CpuError> {
        Ok(Prog {
            program: program.clone(),
            bindings: bindings.clone(),
        })
    }
    fn len(c: &Prog) -> usize {
        c.program.kernels.len()
    }
    unsafe fn run_kernel(c: &Prog, index: usize, args: &[*mut u8]) -> Result<(), CpuError> {
        let b = &c.bindings;
        let Some(Kernel::Elementwise(e)) = c.program.kernels.get(index).map(|k| &k.body) else {
            return Err(unsupported("family"));
        };
        let dims = e.shape.eval(b).ok_or_else(|| unsupported("shape"))?;
        let n: u64 = dims.iter().product();
        let mut vals = vec![0f32; e.exprs.nodes.len()];
        for lin in 0..n {
            let mut coord = vec![0i64; dims.len()];
            let mut rest = lin;
            for (d, &extent) in dims.iter().enumerate().rev() {
                coord[d] = (rest % extent) as i64;
                rest /= extent;
            }
            for (i, node) in e.exprs.nodes.iter().enumerate() {
                vals[i] = match &node.expr {
                    Expr::Load { arg, map } => {
                        let mut off =
                            eval_poly(&map.offset, b).ok_or_else(|| unsupported("map"))?;
                        for (c, t) in coord.iter().zip(&map.strides) {
                            off += c * t.eval(b).ok_or_else(|| unsupported("map"))?;
                        }
                        // SAFETY: the executor passes buffers sized for the bindings.
                        unsafe { *(args[*arg as usize] as *const f32).add(off as usize) }
                    }
                    Expr::Const(Scalar::F(x)) => *x as f32,
                    Expr::Binary { op, a, b } => {
                        let (x, y) = (vals[*a as usize], vals[*b as usize]);
                        match op {
                            BinaryOp::Add => x + y,
                            BinaryOp::Mul => x * y,
                            BinaryOp::Max => x.max(y),
                            _ => return Err(unsupported("binary op")),
                        }
                    }
                    _ => return Err(unsupported("expression")),
                };
            }
            for &(arg, id) in &e.outputs {
                // SAFETY: as above.
                unsafe { *(args[arg as usize] as *mut f32).add(lin as usize) = vals[id as usize] };
            }
        }
        Ok(())
    }
}

fn b4() -> Shape {
    Shape(vec![Dim::sym("B"), Dim::fixed(4)])
}

fn load(e: &mut Exprs, arg: u32, batch_stride: u64) -> u32 {
    let map = IndexMap {
        offset: vec![],
        strides: vec![Term::of(Dim::fixed(batch_stride)), Term::constant(1)],
    };
    e.push(DType::F32, Expr::Load { arg, map })
}

fn ew(name: &str, args: Vec<u32>, exprs: Exprs, out: u32, id: u32) -> KernelSpec {
    KernelSpec {
        name: name.into(),
        writes: vec![out],
        args,
        body: Kernel::Elementwise(Elementwise {
            shape: b4(),
            exprs,
            outputs: vec![(out, id)],
        }),
    }
}

fn buf(name: &str, shape: Shape, kind: BufferKind) -> Buffer {
    Buffer {
        name: name.into(),
        dtype: DType::F32,
        shape,
        kind,
    }
}

/// `t = x + w`; `u = t·2` into the arena after `t`; `out = max(v, -inf)` where `v`
/// aliases `u` (a reshape `[B,4] → [4B]` read back as `[B,4]` through the alias root).
fn plan() -> Plan {
    let mut e1 = Exprs::new();
    let (x, w) = (load(&mut e1, 0, 4), load(&mut e1, 1, 0));
    let s = e1.push(
        DType::F32,
        Expr::Binary {
            op: BinaryOp::Add,
            a: x,
            b: w,
        },
    );
    let mut e2 = Exprs::new();
    let t = load(&mut e2, 0, 4);
    let two = e2.push(DType::F32, Expr::Const(Scalar::F(2.0)));
    let m = e2.push(
        DType::F32,
        Expr::Binary {
            op: BinaryOp::Mul,
            a: t,
            b: two,
        },
    );
    let mut e3 = Exprs::new();
    let v = load(&mut e3, 0, 4);
    let ninf = e3.push(DType::F32, Expr::Const(Scalar::F(f64::NEG_INFINITY)));
    let r = e3.push(
        DType::F32,
        Expr::Binary {
            op: BinaryOp::Max,
            a: v,
            b: ninf,
        },
    );
    let flat = Shape(vec![
        Dim::sym("B")
            .checked_mul(&Dim::fixed(4))
            .unwrap_or(Dim::fixed(0)),
    ]);
    let program = Program {
        symbols: vec![Symbol {
            name: "B".into(),
            max: 4,
        }],
        buffers: vec![
            buf("x", b4(), BufferKind::Input { index: 0 }),
            buf(
                "w",
                Shape::fixed(&[4]),
                BufferKind::Weight { name: "w".into() },
            ),
            buf("t", b4(), BufferKind::Activation { offset: 0 }),
            buf("u", b4(), BufferKind::Activation { offset: 64 }),
            buf("v", flat, BufferKind::Alias { base: 3 }),
            buf("out", b4(), BufferKind::Output { index: 0 }),
        ],
        inputs: vec![0],
        outputs: vec![5],
        kernels: vec![
            ew("bias", vec![0, 1, 2], e1, 2, s),
            ew("scale", vec![2, 3], e2, 1, m),
            ew("clamp", vec![4, 5], e3, 1, r),
        ],
        arena_bytes: 128,
    };
    let prov = Provenance {
        dqc_version: "test".into(),
        source_sha256: "0".repeat(64),
        calibration_sha256: None,
        compile_options: String::new(),
    };
    let w = Tensor::from_f32(DType::F32, vec![4], &[1.0, -2.0, 0.5, 3.0])
        .unwrap_or_else(|e| panic!("{e}"));
    let bytes = plan_bytes(
        &PlanParts::new("cpu", program, prov),
        &[("w".into(), w)],
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    Plan::from_bytes("test", &bytes).unwrap_or_else(|e| panic!("{e}"))
}

fn run(
    exec: &CpuExecutor<Interp>,
    plan: &Plan,
    x: &Tensor,
) -> Result<Vec<(String, Tensor)>, RuntimeError> {
    let bound = bind_inputs(plan.signature(), plan.program(), &[("x", x)])?;
    exec.run(plan, &bound.inputs, &bound.bindings)
}

fn expected(xs: &[f32]) -> Vec<f32> {
    xs.iter()
        .zip([1.0f32, -2.0, 0.5, 3.0].iter().cycle())
        .map(|(x, w)| 2.0 * (x + w))
        .collect()
}

#[test]
fn kernels_see_inputs_weights_arena_and_aliases() {
    let plan = plan();
    let exec = CpuExecutor::<Interp>::new(&plan).unwrap();
    let xs: Vec<f32> = (0..8).map(|i| i as f32).collect();
    let x = Tensor::from_f32(DType::F32, vec![2, 4], &xs).unwrap();
    let out = run(&exec, &plan, &x).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, "out");
    assert_eq!(out[0].1.shape(), &[2, 4]);
    assert_eq!(out[0].1.to_f32_vec(), expected(&xs));
    // A smaller batch reuses the arena and compiles a second variant.
    let x1 = Tensor::from_f32(DType::F32, vec![1, 4], &xs[4..]).unwrap();
    let out1 = run(&exec, &plan, &x1).unwrap();
    assert_eq!(out1[0].1.to_f32_vec(), expected(&xs[4..]));
    assert_eq!(exec.variants(), 2);
    // Unaligned input bytes are copied to aligned storage first.
    let mut raw = vec![0u8];
    raw.extend_from_slice(x.bytes());
    let shifted: Arc<[u8]> = Arc::from(&raw[1..]);
    let unaligned = Tensor::from_bytes(DType::F32, vec![2, 4], shifted).unwrap();
    assert_eq!(run(&exec, &plan, &unaligned).unwrap()[0].1, out[0].1);
    // Earlier outputs are not overwritten by later runs.
    assert_eq!(out[0].1.to_f32_vec(), expected(&xs));
}

#[test]
fn dropped_outputs_are_reused_and_held_ones_are_not() {
    let plan = plan();
    let exec = CpuExecutor::<Interp>::new(&plan).unwrap();
    let xs: Vec<f32> = (0..8).map(|i| i as f32).collect();
    let ys: Vec<f32> = (0..8).map(|i| 10.0 - i as f32).collect();
    let x = Tensor::from_f32(DType::F32, vec![2, 4], &xs).unwrap();
    let y = Tensor::from_f32(DType::F32, vec![2, 4], &ys).unwrap();
    let addr = |o: &[(String, Tensor)]| o[0].1.bytes().as_ptr() as usize;
    // Held: the next run gets another buffer and the first output keeps its values.
    let first = run(&exec, &plan, &x).unwrap();
    let second = run(&exec, &plan, &y).unwrap();
    assert_ne!(addr(&first), addr(&second));
    assert_eq!(first[0].1.to_f32_vec(), expected(&xs));
    assert_eq!(second[0].1.to_f32_vec(), expected(&ys));
    // Dropped (every clone of it): its buffer serves the next run of that size.
    let a = addr(&first);
    let clone = first[0].1.clone();
    drop(first);
    let third = run(&exec, &plan, &y).unwrap();
    assert_ne!(addr(&third), a, "a clone still holds the first buffer");
    assert_eq!(clone.to_f32_vec(), expected(&xs));
    drop(clone);
    let fourth = run(&exec, &plan, &x).unwrap();
    assert_eq!(addr(&fourth), a);
    assert_eq!(fourth[0].1.to_f32_vec(), expected(&xs));
    // Another size does not take it; an output outliving its session stays readable.
    drop(fourth);
    let x1 = Tensor::from_f32(DType::F32, vec![1, 4], &xs[4..]).unwrap();
    let small = run(&exec, &plan, &x1).unwrap();
    assert_ne!(addr(&small), a);
    drop(exec);
    assert_eq!(small[0].1.to_f32_vec(), expected(&xs[4..]));
    assert_eq!(third[0].1.to_f32_vec(), expected(&ys));
}
