//! Shared helpers of the CPU backend tests: building one-kernel programs, 64-byte aligned
//! buffers, running and reading back.
#![allow(dead_code)]

use dqc_codegen::cpu::{Bindings, CpuError, CpuProgram};
use dqc_codegen::spec::{
    Buffer, BufferKind, Expr, ExprId, Exprs, IndexMap, Kernel, KernelSpec, Program, Term,
};
use dqc_ir::op::BinaryOp;
use dqc_ir::{DType, Dim, Shape, Tensor};

/// A 64-byte aligned byte buffer.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Block([u8; 64]);

/// A buffer of some dtype.
pub struct Buf {
    blocks: Vec<Block>,
    pub dtype: DType,
    pub numel: usize,
}

impl Buf {
    pub fn zeros(dtype: DType, numel: usize) -> Buf {
        let bytes = dtype.storage_bytes(numel);
        Buf {
            blocks: vec![Block([0; 64]); bytes.div_ceil(64).max(1)],
            dtype,
            numel,
        }
    }
    pub fn from_tensor(t: &Tensor) -> Buf {
        let mut b = Buf::zeros(t.dtype(), t.numel());
        b.bytes_mut()[..t.bytes().len()].copy_from_slice(t.bytes());
        b
    }
    pub fn f32(v: &[f32]) -> Buf {
        Buf::from_tensor(&Tensor::from_f32(DType::F32, vec![v.len() as u64], v).unwrap())
    }
    pub fn of(dtype: DType, v: &[f32]) -> Buf {
        Buf::from_tensor(&Tensor::from_f32(dtype, vec![v.len() as u64], v).unwrap())
    }
    pub fn ints(dtype: DType, v: &[i64]) -> Buf {
        Buf::from_tensor(&Tensor::from_i64(dtype, vec![v.len() as u64], v).unwrap())
    }
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: blocks are plain bytes.
        let all = unsafe {
            std::slice::from_raw_parts(self.blocks.as_ptr().cast::<u8>(), self.blocks.len() * 64)
        };
        &all[..self.dtype.storage_bytes(self.numel)]
    }
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let n = self.dtype.storage_bytes(self.numel);
        // SAFETY: blocks are plain bytes.
        let all = unsafe {
            std::slice::from_raw_parts_mut(
                self.blocks.as_mut_ptr().cast::<u8>(),
                self.blocks.len() * 64,
            )
        };
        &mut all[..n]
    }
    pub fn to_f32(&self) -> Vec<f32> {
        dqc_ir::numeric::decode_f32(self.dtype, self.bytes(), self.numel)
    }
    pub fn to_i64(&self) -> Vec<i64> {
        dqc_ir::numeric::decode_i64(self.dtype, self.bytes(), self.numel)
    }
    pub fn ptr(&mut self) -> *mut u8 {
        self.blocks.as_mut_ptr().cast()
    }
}

/// `(dtype, shape)` buffers.
pub fn program(bufs: &[(DType, Vec<u64>)], kernel: Kernel, writes: Vec<u32>) -> Program {
    Program {
        symbols: vec![],
        buffers: bufs
            .iter()
            .enumerate()
            .map(|(i, (dt, s))| Buffer {
                name: format!("b{i}"),
                dtype: *dt,
                shape: Shape::fixed(s),
                kind: BufferKind::Activation { offset: 0 },
            })
            .collect(),
        inputs: vec![],
        outputs: vec![],
        kernels: vec![KernelSpec {
            name: "k".into(),
            args: (0..bufs.len() as u32).collect(),
            writes,
            body: kernel,
        }],
        arena_bytes: 0,
    }
}

/// Compile with no bindings and run kernel 0 over `bufs` (argument i = bufs[i]).
pub fn run(p: &Program, bufs: &mut [Buf]) -> Result<(), CpuError> {
    run_with(p, &Bindings::new(), bufs)
}

pub fn run_with(p: &Program, b: &Bindings, bufs: &mut [Buf]) -> Result<(), CpuError> {
    let cp = CpuProgram::compile(p, b)?;
    let ptrs: Vec<*mut u8> = bufs.iter_mut().map(|b| b.ptr()).collect();
    // SAFETY: every buffer is sized for its declared shape and 64-byte aligned.
    unsafe { cp.run_kernel(0, &ptrs) }
}

/// Median wall time in seconds of `runs` runs of kernel 0 of `cp` over `bufs` on a
/// one-thread pool (the ignored benchmarks).
pub fn median_one_thread(cp: &CpuProgram, bufs: &mut [Buf], runs: usize) -> f64 {
    let ptrs: Vec<usize> = bufs.iter_mut().map(|b| b.ptr() as usize).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    let mut ts: Vec<f64> = pool.install(|| {
        let ptrs: Vec<*mut u8> = ptrs.iter().map(|&p| p as *mut u8).collect();
        (0..runs.max(1))
            .map(|_| {
                let t0 = std::time::Instant::now();
                // SAFETY: every buffer is sized for its declared shape and 64-byte aligned.
                unsafe { cp.run_kernel(0, &ptrs) }.expect("kernel runs");
                t0.elapsed().as_secs_f64()
            })
            .collect()
    });
    ts.sort_by(f64::total_cmp);
    ts[ts.len() / 2]
}

/// Constant terms.
pub fn t(c: i64) -> Term {
    Term::constant(c)
}

/// An index map with constant offset and strides.
pub fn map(offset: i64, strides: &[i64]) -> IndexMap {
    IndexMap {
        offset: if offset == 0 { vec![] } else { vec![t(offset)] },
        strides: strides.iter().map(|&s| t(s)).collect(),
    }
}

/// Row-major strides of a shape.
pub fn dense(shape: &[u64]) -> Vec<i64> {
    let mut s = vec![0i64; shape.len()];
    let mut acc = 1i64;
    for d in (0..shape.len()).rev() {
        s[d] = acc;
        acc *= shape[d] as i64;
    }
    s
}

pub fn load(e: &mut Exprs, dt: DType, arg: u32, m: IndexMap) -> ExprId {
    e.push(dt, Expr::Load { arg, map: m })
}

/// `op(a, b)` of dtype `dt`.
pub fn bin(e: &mut Exprs, dt: DType, op: BinaryOp, a: ExprId, b: ExprId) -> ExprId {
    e.push(dt, Expr::Binary { op, a, b })
}

pub fn fixed(s: &[u64]) -> Shape {
    Shape::fixed(s)
}

pub fn sym(s: &str) -> Dim {
    Dim::sym(s)
}

/// Deterministic pseudo-random f32s in [-1, 1).
pub fn rand_f32(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub fn assert_close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = g == w || (g - w).abs() <= tol * (1.0 + w.abs()) || (g.is_nan() && w.is_nan());
        assert!(ok, "element {i}: got {g}, want {w}");
    }
}
