//! `Kb`, the kernel builder every family generator uses: the entry function with the ABI's
//! parameters ([`super::abi`]), sizes from symbol parameters, special registers, barriers,
//! warp shuffles, loops, typed element loads and stores, and fault reporting.
//!
//! Values inside generated code follow the CPU backend's model: every float is carried as
//! f32 (rounded to its dtype's value set after each operation), every integer and bool as
//! i64 (wrapped to its dtype's width).

use super::PtxError;
use super::abi::{ENTRY_PREFIX, entry_name};
use crate::spec::{KernelSpec, Program, Term};
use dqc_ir::target::Target;
use dqc_ir::{DType, Dim};
use inkwell::AddressSpace;
use inkwell::IntPredicate;
use inkwell::attributes::AttributeLoc;
use inkwell::basic_block::BasicBlock;
use inkwell::builder::Builder;
use inkwell::context::Context;
use inkwell::module::Module;
use inkwell::types::{BasicMetadataTypeEnum, BasicTypeEnum};
use inkwell::values::{
    BasicMetadataValueEnum, BasicValueEnum, FloatValue, FunctionValue, IntValue, PointerValue,
};

/// The PTX kernel calling convention of LLVM's NVPTX backend (`ptx_kernel`).
pub(crate) const PTX_KERNEL_CC: u32 = 71;
/// Global memory address space.
pub(crate) const GLOBAL: u16 = 1;
/// Shared memory address space.
pub(crate) const SHARED: u16 = 3;

/// A value in generated code: f32 for floats, i64 for integers and bools.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Val<'ctx> {
    /// A float, as f32.
    F(FloatValue<'ctx>),
    /// An integer or bool, as i64.
    I(IntValue<'ctx>),
}

/// Result type of builder operations.
pub(crate) type R<T> = Result<T, PtxError>;

/// Builds one kernel entry into a module.
pub(crate) struct Kb<'ctx, 'a> {
    /// The LLVM context.
    pub cx: &'ctx Context,
    /// The module being built.
    pub m: &'a Module<'ctx>,
    /// The instruction builder, positioned in the kernel.
    pub b: Builder<'ctx>,
    /// The entry function.
    pub f: FunctionValue<'ctx>,
    /// The spec being generated.
    pub spec: &'a KernelSpec,
    /// The target.
    pub target: &'a Target,
    /// The buffer dtypes of the arguments.
    pub arg_dtypes: Vec<DType>,
    /// Host mode (tests only): the function is an ordinary host function and the NVPTX
    /// approximation intrinsics are replaced by LLVM's portable ones, so the value and
    /// expression code can be JIT-run on the build machine.
    pub host: bool,
    fault: PointerValue<'ctx>,
    kernel_index: Option<IntValue<'ctx>>,
    args: Vec<PointerValue<'ctx>>,
    sym_names: Vec<String>,
    syms: Vec<IntValue<'ctx>>,
}

impl<'ctx, 'a> Kb<'ctx, 'a> {
    /// Declare the entry of kernel `index` in `m` and position a builder at its start.
    pub fn new(
        cx: &'ctx Context,
        m: &'a Module<'ctx>,
        program: &'a Program,
        index: usize,
        target: &'a Target,
    ) -> R<Kb<'ctx, 'a>> {
        let spec = program.kernels.get(index).ok_or(PtxError::NoSuchKernel {
            index,
            len: program.kernels.len(),
        })?;
        let gptr = cx.ptr_type(AddressSpace::from(GLOBAL));
        let mut params: Vec<BasicMetadataTypeEnum> = vec![gptr.into(), cx.i32_type().into()];
        params.extend(spec.args.iter().map(|_| BasicMetadataTypeEnum::from(gptr)));
        params.extend(
            program
                .symbols
                .iter()
                .map(|_| BasicMetadataTypeEnum::from(cx.i64_type())),
        );
        let fty = cx.void_type().fn_type(&params, false);
        let name = entry_name(index);
        // (kernels sharing this entry are generated once: see `abi::entry_names`)
        debug_assert!(name.starts_with(ENTRY_PREFIX));
        let f = m.add_function(&name, fty, None);
        f.set_call_conventions(PTX_KERNEL_CC);
        let mut arg_dtypes = Vec::with_capacity(spec.args.len());
        for (i, &buf) in spec.args.iter().enumerate() {
            let b = program
                .buffers
                .get(buf as usize)
                .ok_or_else(|| PtxError::Malformed {
                    kernel: spec.name.clone(),
                    what: format!("argument {i} names buffer {buf}, which does not exist"),
                })?;
            arg_dtypes.push(b.dtype);
        }
        let noalias = cx.create_enum_attribute(
            inkwell::attributes::Attribute::get_named_enum_kind_id("noalias"),
            0,
        );
        // The fault word aliases nothing else.
        f.add_attribute(AttributeLoc::Param(0), noalias);
        let params = f.get_params();
        let fault = params[0].into_pointer_value();
        fault.set_name("fault");
        let kernel_index = params[1].into_int_value();
        kernel_index.set_name("kernel");
        let mut args = Vec::with_capacity(spec.args.len());
        for i in 0..spec.args.len() {
            let p = params[2 + i].into_pointer_value();
            p.set_name(&format!("arg{i}"));
            args.push(p);
        }
        let mut syms = Vec::with_capacity(program.symbols.len());
        for (j, s) in program.symbols.iter().enumerate() {
            let v = params[2 + spec.args.len() + j].into_int_value();
            v.set_name(&s.name);
            syms.push(v);
        }
        let b = cx.create_builder();
        let entry = cx.append_basic_block(f, "entry");
        b.position_at_end(entry);
        Ok(Kb {
            cx,
            m,
            b,
            f,
            spec,
            target,
            arg_dtypes,
            host: false,
            fault,
            kernel_index: Some(kernel_index),
            args,
            sym_names: program.symbols.iter().map(|s| s.name.clone()).collect(),
            syms,
        })
    }

    /// A host function `void name(ptr fault, ptr argv, ptr syms, i64 count)` for testing value
    /// and expression code on the build machine (see [`Kb::host`]): argument `i` is the
    /// pointer `argv[i]`, symbol `j` the i64 `syms[j]`; the count is [`Kb::host_count`].
    #[cfg(test)]
    pub fn new_host(
        cx: &'ctx Context,
        m: &'a Module<'ctx>,
        spec: &'a KernelSpec,
        arg_dtypes: Vec<DType>,
        sym_names: Vec<String>,
        target: &'a Target,
    ) -> Kb<'ctx, 'a> {
        let ptr = cx.ptr_type(AddressSpace::default());
        let i64t = cx.i64_type();
        let params: Vec<BasicMetadataTypeEnum> =
            vec![ptr.into(), ptr.into(), ptr.into(), i64t.into()];
        let f = m.add_function(&spec.name, cx.void_type().fn_type(&params, false), None);
        let ps = f.get_params();
        let fault = ps[0].into_pointer_value();
        let argv = ps[1].into_pointer_value();
        let symv = ps[2].into_pointer_value();
        let b = cx.create_builder();
        let entry = cx.append_basic_block(f, "entry");
        b.position_at_end(entry);
        let load = |base, ty: BasicTypeEnum<'ctx>, i: usize| -> BasicValueEnum<'ctx> {
            // SAFETY (LLVM IR semantics): the caller passes arrays of the right length.
            let p = unsafe {
                b.build_in_bounds_gep(ty, base, &[i64t.const_int(i as u64, false)], "")
                    .unwrap()
            };
            b.build_load(ty, p, "").unwrap()
        };
        let args = (0..arg_dtypes.len())
            .map(|i| load(argv, ptr.into(), i).into_pointer_value())
            .collect();
        let syms = (0..sym_names.len())
            .map(|j| load(symv, i64t.into(), j).into_int_value())
            .collect();
        Kb {
            cx,
            m,
            b,
            f,
            spec,
            target,
            arg_dtypes,
            host: true,
            fault,
            kernel_index: None,
            args,
            sym_names,
            syms,
        }
    }

    /// The element count parameter of a host test function.
    #[cfg(test)]
    pub fn host_count(&self) -> IntValue<'ctx> {
        self.f
            .get_nth_param(3)
            .map(|p| p.into_int_value())
            .unwrap_or_else(|| self.i64c(0))
    }

    // ---- errors ------------------------------------------------------------------------

    /// A `Malformed` error naming this kernel.
    pub fn malformed(&self, what: impl Into<String>) -> PtxError {
        PtxError::Malformed {
            kernel: self.spec.name.clone(),
            what: what.into(),
        }
    }

    /// An `Unsupported` error naming this kernel.
    pub fn unsupported(&self, what: impl Into<String>) -> PtxError {
        PtxError::Unsupported {
            kernel: self.spec.name.clone(),
            what: what.into(),
        }
    }

    /// Map an LLVM builder error.
    pub fn e<E: std::fmt::Display>(&self, e: E) -> PtxError {
        PtxError::Llvm {
            module: self.spec.name.clone(),
            message: e.to_string(),
        }
    }

    // ---- constants and sizes -----------------------------------------------------------

    /// An i64 constant.
    pub fn i64c(&self, v: i64) -> IntValue<'ctx> {
        self.cx.i64_type().const_int(v as u64, true)
    }

    /// An i32 constant.
    pub fn i32c(&self, v: i32) -> IntValue<'ctx> {
        self.cx.i32_type().const_int(v as u32 as u64, true)
    }

    /// An f32 constant.
    pub fn f32c(&self, v: f32) -> FloatValue<'ctx> {
        self.cx.f32_type().const_float(v as f64)
    }

    /// The argument pointer `arg` (global address space).
    pub fn arg(&self, arg: u32) -> R<PointerValue<'ctx>> {
        self.args
            .get(arg as usize)
            .copied()
            .ok_or_else(|| self.malformed(format!("argument {arg} does not exist")))
    }

    /// The dtype of argument `arg`.
    pub fn arg_dtype(&self, arg: u32) -> R<DType> {
        self.arg_dtypes
            .get(arg as usize)
            .copied()
            .ok_or_else(|| self.malformed(format!("argument {arg} does not exist")))
    }

    /// The value of a dimension, from its factor and the symbol parameters (i64).
    pub fn dim(&self, d: &Dim) -> R<IntValue<'ctx>> {
        let mut v = self.i64c(d.factor() as i64);
        for (name, exp) in d.symbols() {
            let j = self
                .sym_names
                .iter()
                .position(|s| s == name)
                .ok_or_else(|| PtxError::Unbound {
                    kernel: self.spec.name.clone(),
                    dim: format!("{d}"),
                })?;
            for _ in 0..*exp {
                v = self
                    .b
                    .build_int_mul(v, self.syms[j], "")
                    .map_err(|e| self.e(e))?;
            }
        }
        Ok(v)
    }

    /// The value of a term (i64).
    pub fn term(&self, t: &Term) -> R<IntValue<'ctx>> {
        let d = self.dim(&t.dim)?;
        if t.coeff == 1 {
            return Ok(d);
        }
        self.b
            .build_int_mul(d, self.i64c(t.coeff), "")
            .map_err(|e| self.e(e))
    }

    /// The value of a polynomial (i64).
    pub fn poly(&self, p: &[Term]) -> R<IntValue<'ctx>> {
        let mut acc = self.i64c(0);
        for t in p {
            let v = self.term(t)?;
            acc = self.add(acc, v)?;
        }
        Ok(acc)
    }

    // ---- integer arithmetic shorthands -------------------------------------------------

    /// `a + b`.
    pub fn add(&self, a: IntValue<'ctx>, b: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        self.b.build_int_add(a, b, "").map_err(|e| self.e(e))
    }

    /// `a - b`.
    pub fn sub(&self, a: IntValue<'ctx>, b: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        self.b.build_int_sub(a, b, "").map_err(|e| self.e(e))
    }

    /// `a * b`.
    pub fn mul(&self, a: IntValue<'ctx>, b: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        self.b.build_int_mul(a, b, "").map_err(|e| self.e(e))
    }

    /// Unsigned `a / b` (both non-negative).
    pub fn udiv(&self, a: IntValue<'ctx>, b: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        self.b
            .build_int_unsigned_div(a, b, "")
            .map_err(|e| self.e(e))
    }

    /// Unsigned `a % b` (both non-negative).
    pub fn urem(&self, a: IntValue<'ctx>, b: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        self.b
            .build_int_unsigned_rem(a, b, "")
            .map_err(|e| self.e(e))
    }

    /// Integer comparison.
    pub fn icmp(&self, p: IntPredicate, a: IntValue<'ctx>, b: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        self.b.build_int_compare(p, a, b, "").map_err(|e| self.e(e))
    }

    /// Integer select.
    pub fn isel(
        &self,
        c: IntValue<'ctx>,
        a: IntValue<'ctx>,
        b: IntValue<'ctx>,
    ) -> R<IntValue<'ctx>> {
        Ok(self
            .b
            .build_select(c, a, b, "")
            .map_err(|e| self.e(e))?
            .into_int_value())
    }

    /// Zero-extend an i32 (or narrower) to i64.
    pub fn zext64(&self, v: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        self.b
            .build_int_z_extend_or_bit_cast(v, self.cx.i64_type(), "")
            .map_err(|e| self.e(e))
    }

    /// Truncate an i64 to i32.
    pub fn trunc32(&self, v: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        self.b
            .build_int_truncate_or_bit_cast(v, self.cx.i32_type(), "")
            .map_err(|e| self.e(e))
    }

    // ---- intrinsics ----------------------------------------------------------------------

    /// Declare (once) and call a function or intrinsic by name.
    pub fn call(
        &self,
        name: &str,
        ret: Option<BasicTypeEnum<'ctx>>,
        args: &[BasicValueEnum<'ctx>],
    ) -> R<Option<BasicValueEnum<'ctx>>> {
        let f = match self.m.get_function(name) {
            Some(f) => f,
            None => {
                let tys: Vec<BasicMetadataTypeEnum> =
                    args.iter().map(|a| a.get_type().into()).collect();
                let fty = match ret {
                    Some(t) => {
                        use inkwell::types::BasicType;
                        t.fn_type(&tys, false)
                    }
                    None => self.cx.void_type().fn_type(&tys, false),
                };
                self.m.add_function(name, fty, None)
            }
        };
        let margs: Vec<BasicMetadataValueEnum> = args.iter().map(|&a| a.into()).collect();
        let cs = self.b.build_call(f, &margs, "").map_err(|e| self.e(e))?;
        Ok(cs.try_as_basic_value().basic())
    }

    /// Call an intrinsic returning f32 on f32 operands (`llvm.sqrt.f32`, …).
    pub fn fcall(&self, name: &str, args: &[FloatValue<'ctx>]) -> R<FloatValue<'ctx>> {
        let a: Vec<BasicValueEnum> = args.iter().map(|&v| v.into()).collect();
        self.call(name, Some(self.cx.f32_type().into()), &a)?
            .map(|v| v.into_float_value())
            .ok_or_else(|| self.malformed(format!("{name} returned nothing")))
    }

    /// A special register (`tid.x`, `ctaid.y`, `ntid.x`, `nctaid.x`, `laneid`), as i32.
    pub fn sreg(&self, reg: &str) -> R<IntValue<'ctx>> {
        let name = format!("llvm.nvvm.read.ptx.sreg.{reg}");
        self.call(&name, Some(self.cx.i32_type().into()), &[])?
            .map(|v| v.into_int_value())
            .ok_or_else(|| self.malformed(format!("{name} returned nothing")))
    }

    /// A special register zero-extended to i64.
    pub fn sreg64(&self, reg: &str) -> R<IntValue<'ctx>> {
        let v = self.sreg(reg)?;
        self.zext64(v)
    }

    /// Declare the kernel's launch bounds (PTX `.maxntid threads` and `.minnctapersm
    /// min_blocks`): ptxas then keeps registers low enough for `min_blocks` blocks of
    /// `threads` threads per multiprocessor (spilling if it must).
    pub fn launch_bounds(&self, threads: u32, min_blocks: u32) {
        for (k, v) in [("nvvm.maxntid", threads), ("nvvm.minctasm", min_blocks)] {
            let a = self.cx.create_string_attribute(k, &v.to_string());
            self.f.add_attribute(AttributeLoc::Function, a);
        }
    }

    /// `__syncthreads()`.
    pub fn barrier(&self) -> R<()> {
        self.call(
            "llvm.nvvm.barrier.cta.sync.aligned.all",
            None,
            &[self.i32c(0).into()],
        )?;
        Ok(())
    }

    /// Butterfly warp shuffle of an f32 across the full warp.
    pub fn shfl_xor_f32(&self, v: FloatValue<'ctx>, lane_mask: i32) -> R<FloatValue<'ctx>> {
        let r = self.call(
            "llvm.nvvm.shfl.sync.bfly.f32",
            Some(self.cx.f32_type().into()),
            &[
                self.i32c(-1).into(),
                v.into(),
                self.i32c(lane_mask).into(),
                self.i32c(31).into(),
            ],
        )?;
        r.map(|v| v.into_float_value())
            .ok_or_else(|| self.malformed("shfl returned nothing"))
    }

    /// Butterfly warp shuffle of an i32 across the full warp.
    pub fn shfl_xor_i32(&self, v: IntValue<'ctx>, lane_mask: i32) -> R<IntValue<'ctx>> {
        let r = self.call(
            "llvm.nvvm.shfl.sync.bfly.i32",
            Some(self.cx.i32_type().into()),
            &[
                self.i32c(-1).into(),
                v.into(),
                self.i32c(lane_mask).into(),
                self.i32c(31).into(),
            ],
        )?;
        r.map(|v| v.into_int_value())
            .ok_or_else(|| self.malformed("shfl returned nothing"))
    }

    // ---- control flow --------------------------------------------------------------------

    /// A new basic block in the kernel.
    pub fn block(&self, name: &str) -> BasicBlock<'ctx> {
        self.cx.append_basic_block(self.f, name)
    }

    /// The block the builder is in.
    pub fn current(&self) -> R<BasicBlock<'ctx>> {
        self.b
            .get_insert_block()
            .ok_or_else(|| self.malformed("builder has no insertion block"))
    }

    /// Branch unconditionally.
    pub fn br(&self, to: BasicBlock<'ctx>) -> R<()> {
        self.b
            .build_unconditional_branch(to)
            .map(|_| ())
            .map_err(|e| self.e(e))
    }

    /// Branch on an i1.
    pub fn cond_br(&self, c: IntValue<'ctx>, t: BasicBlock<'ctx>, f: BasicBlock<'ctx>) -> R<()> {
        self.b
            .build_conditional_branch(c, t, f)
            .map(|_| ())
            .map_err(|e| self.e(e))
    }

    /// `for (i = start; i < end; i += step) body(i)` over i64 (signed compare). The body may
    /// create blocks; it must leave the builder in the block that falls through to the
    /// next iteration.
    pub fn for_loop(
        &mut self,
        start: IntValue<'ctx>,
        end: IntValue<'ctx>,
        step: IntValue<'ctx>,
        mut body: impl FnMut(&mut Self, IntValue<'ctx>) -> R<()>,
    ) -> R<()> {
        let pre = self.current()?;
        let head = self.block("loop");
        let bodyb = self.block("body");
        let exit = self.block("exit");
        self.br(head)?;
        self.b.position_at_end(head);
        let phi = self
            .b
            .build_phi(self.cx.i64_type(), "i")
            .map_err(|e| self.e(e))?;
        phi.add_incoming(&[(&start, pre)]);
        let i = phi.as_basic_value().into_int_value();
        let c = self.icmp(IntPredicate::SLT, i, end)?;
        self.cond_br(c, bodyb, exit)?;
        self.b.position_at_end(bodyb);
        body(self, i)?;
        let next = self.add(i, step)?;
        let latch = self.current()?;
        self.br(head)?;
        phi.add_incoming(&[(&next, latch)]);
        self.b.position_at_end(exit);
        Ok(())
    }

    /// `if (c) body()`.
    pub fn if_then(&mut self, c: IntValue<'ctx>, body: impl FnOnce(&mut Self) -> R<()>) -> R<()> {
        let then = self.block("then");
        let join = self.block("join");
        self.cond_br(c, then, join)?;
        self.b.position_at_end(then);
        body(self)?;
        self.br(join)?;
        self.b.position_at_end(join);
        Ok(())
    }

    /// Return from the kernel.
    pub fn ret(&self) -> R<()> {
        self.b.build_return(None).map(|_| ()).map_err(|e| self.e(e))
    }

    /// Record fault `code` (first fault wins) when `cond` (i1) holds.
    pub fn fault_if(&mut self, cond: IntValue<'ctx>, code: u32) -> R<()> {
        let fault = self.fault;
        let index = self.kernel_index;
        self.if_then(cond, |kb| {
            let zero = kb.i32c(0);
            // code | kernel << 8, the kernel index passed at launch (entries are shared by
            // kernels with identical code)
            let w = match index {
                Some(k) => {
                    let hi =
                        kb.b.build_left_shift(k, kb.i32c(8), "")
                            .map_err(|e| kb.e(e))?;
                    kb.b.build_or(hi, kb.i32c(code as i32), "")
                        .map_err(|e| kb.e(e))?
                }
                None => kb.i32c(code as i32),
            };
            kb.b.build_cmpxchg(
                fault,
                zero,
                w,
                inkwell::AtomicOrdering::Monotonic,
                inkwell::AtomicOrdering::Monotonic,
            )
            .map_err(|e| kb.e(e))?;
            Ok(())
        })
    }

    // ---- element access --------------------------------------------------------------------

    /// Address of byte `byte_off` of argument `arg`.
    pub fn byte_ptr(&self, arg: u32, byte_off: IntValue<'ctx>) -> R<PointerValue<'ctx>> {
        let p = self.arg(arg)?;
        // SAFETY (LLVM IR semantics): an in-bounds GEP over i8; the offsets generated stay
        // inside the argument's buffer by construction of the lowering.
        unsafe {
            self.b
                .build_in_bounds_gep(self.cx.i8_type(), p, &[byte_off], "")
                .map_err(|e| self.e(e))
        }
    }

    /// Address of element `idx` of a pointer to elements of LLVM type `ty`.
    pub fn elem_ptr<T: inkwell::types::BasicType<'ctx>>(
        &self,
        base: PointerValue<'ctx>,
        ty: T,
        idx: IntValue<'ctx>,
    ) -> R<PointerValue<'ctx>> {
        // SAFETY (LLVM IR semantics): as `byte_ptr`.
        unsafe {
            self.b
                .build_in_bounds_gep(ty, base, &[idx], "")
                .map_err(|e| self.e(e))
        }
    }
}
