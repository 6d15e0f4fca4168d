//! Fused elementwise kernels: one generated function per kernel, run over chunks of the
//! flat iteration space in parallel.

use super::exprgen::{self, ExprKernel, Store};
use super::jit::{self, Jit, JitCode};
use super::par::{ArgsPtr, for_ranges};
use super::resolve::Ctx;
use super::{CpuError, fault_error};
use crate::spec::Elementwise;
use cranelift_module::FuncId;

/// Elements per parallel chunk (at least).
const MIN_CHUNK: u64 = 16 * 1024;

/// A compiled elementwise kernel.
pub(super) struct ElementwiseKernel {
    func: FuncId,
    total: u64,
}

/// Generate the kernel's function.
pub(super) fn compile(
    jit: &mut Jit,
    ctx: &Ctx,
    spec: &Elementwise,
) -> Result<ElementwiseKernel, CpuError> {
    let shape = ctx.shape(&spec.shape)?;
    if spec.outputs.is_empty() {
        return Err(ctx.malformed("an elementwise kernel without outputs"));
    }
    let stores = spec
        .outputs
        .iter()
        .map(|&(arg, expr)| Store::Arg { arg, expr })
        .collect();
    let total = shape.iter().product();
    let k = ExprKernel {
        exprs: &spec.exprs,
        shape,
        stores,
        acc: None,
    };
    let func = exprgen::compile(jit, ctx, &k)?;
    Ok(ElementwiseKernel { func, total })
}

impl ElementwiseKernel {
    /// Run over the whole iteration space.
    ///
    /// # Safety
    /// `run_kernel`'s contract.
    pub unsafe fn run(&self, code: &JitCode, name: &str, args: &[*mut u8]) -> Result<(), CpuError> {
        let f = code.expr_fn(self.func).ok_or_else(|| CpuError::Jit {
            kernel: name.to_string(),
            message: "function missing after finalization".into(),
        })?;
        let a = ArgsPtr(args.as_ptr());
        for_ranges(self.total, MIN_CHUNK, 64, |s, e| {
            // SAFETY: run_kernel's contract; chunks write disjoint elements (even
            // boundaries, so packed 4-bit outputs never share a byte between workers).
            unsafe { jit::call(f, a.get(), s as i64, e as i64, std::ptr::null_mut()) }
        })
        .map_err(|flt| fault_error(name, flt))
    }
}
