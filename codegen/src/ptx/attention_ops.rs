//! Kernel-builder helpers of the attention family: register slots, shared-memory access,
//! guarded global loads, `cp.async` and the `mma.sync` m16n8k16 wrapper (f16 / bf16 inputs,
//! f32 accumulation). Named for attention so they do not collide with the GEMM family's
//! own tensor-core wrappers.
//!
//! Everything here is an LLVM intrinsic (`llvm.nvvm.mma.m16n8k16.row.col.*`,
//! `llvm.nvvm.cp.async.*`); no inline PTX.

use super::builder::{Kb, R, Val};
use super::mma::MmaKind;
use dqc_ir::DType;
use inkwell::IntPredicate;
use inkwell::types::BasicTypeEnum;
use inkwell::values::{BasicValue, BasicValueEnum, FloatValue, IntValue, PointerValue};

/// A mutable f32 slot (an `alloca` in the entry block; LLVM promotes it to a register
/// because every access uses it directly).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot<'ctx>(PointerValue<'ctx>);

impl<'ctx> Kb<'ctx, '_> {
    /// A new f32 slot holding `init`. Must be called while the builder is still in the
    /// entry block (before any branch), so that the slot is promoted to a register.
    pub fn attn_slot(&self, init: FloatValue<'ctx>) -> R<Slot<'ctx>> {
        let p = self
            .b
            .build_alloca(self.cx.f32_type(), "slot")
            .map_err(|e| self.e(e))?;
        self.b.build_store(p, init).map_err(|e| self.e(e))?;
        Ok(Slot(p))
    }

    /// Read a slot.
    pub fn attn_get(&self, s: Slot<'ctx>) -> R<FloatValue<'ctx>> {
        Ok(self
            .b
            .build_load(self.cx.f32_type(), s.0, "")
            .map_err(|e| self.e(e))?
            .into_float_value())
    }

    /// Write a slot.
    pub fn attn_set(&self, s: Slot<'ctx>, v: FloatValue<'ctx>) -> R<()> {
        self.b
            .build_store(s.0, v)
            .map(|_| ())
            .map_err(|e| self.e(e))
    }

    /// `a & b` on i1.
    pub fn attn_and(&self, a: IntValue<'ctx>, b: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        self.b.build_and(a, b, "").map_err(|e| self.e(e))
    }

    /// Signed minimum of two i64.
    pub fn attn_smin(&self, a: IntValue<'ctx>, b: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        let c = self.icmp(IntPredicate::SLT, a, b)?;
        self.isel(c, a, b)
    }

    /// Signed maximum of two i64.
    pub fn attn_smax(&self, a: IntValue<'ctx>, b: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        let c = self.icmp(IntPredicate::SGT, a, b)?;
        self.isel(c, a, b)
    }

    /// Element `idx` of argument `arg` as f32 when `cond` holds, else 0. The load always
    /// happens, at element 0 when `cond` is false, so the caller must know that the
    /// argument holds at least one element.
    pub fn attn_load_f(
        &self,
        arg: u32,
        cond: IntValue<'ctx>,
        idx: IntValue<'ctx>,
    ) -> R<FloatValue<'ctx>> {
        let safe = self.isel(cond, idx, self.i64c(0))?;
        let v = self.load(arg, safe)?;
        let f = self.as_f(v)?;
        self.fsel(cond, f, self.f32c(0.0))
    }

    /// Element `idx` of argument `arg` (any dtype, as loaded) when `cond` holds; when it
    /// does not, element 0 is loaded instead (same contract as [`Kb::attn_load_f`]) and the
    /// caller must ignore the value.
    pub fn attn_load_raw(
        &self,
        arg: u32,
        cond: IntValue<'ctx>,
        idx: IntValue<'ctx>,
    ) -> R<Val<'ctx>> {
        let safe = self.isel(cond, idx, self.i64c(0))?;
        self.load(arg, safe)
    }

    /// Pointer to byte `off` (i64) of the dynamic shared memory.
    pub fn attn_smem(&self, off: IntValue<'ctx>) -> R<PointerValue<'ctx>> {
        let base = self.dyn_shared()?;
        self.elem_ptr(base, self.cx.i8_type(), off)
    }

    /// Load a value of type `ty` at shared byte `off`, with the given alignment.
    pub fn attn_lds(
        &self,
        ty: BasicTypeEnum<'ctx>,
        off: IntValue<'ctx>,
        align: u32,
    ) -> R<BasicValueEnum<'ctx>> {
        let p = self.attn_smem(off)?;
        let v = self.b.build_load(ty, p, "").map_err(|e| self.e(e))?;
        if let Some(inst) = v.as_instruction_value() {
            inst.set_alignment(align).map_err(|e| self.e(e))?;
        }
        Ok(v)
    }

    /// Store `v` at shared byte `off`, with the given alignment.
    pub fn attn_sts(&self, off: IntValue<'ctx>, v: BasicValueEnum<'ctx>, align: u32) -> R<()> {
        let p = self.attn_smem(off)?;
        let st = self.b.build_store(p, v).map_err(|e| self.e(e))?;
        st.set_alignment(align).map_err(|e| self.e(e))?;
        Ok(())
    }

    /// The LLVM type of a 16-bit float element (`half` / `bfloat`).
    pub fn attn_half_type(&self, dt: DType) -> R<inkwell::types::FloatType<'ctx>> {
        match dt {
            DType::F16 => Ok(self.cx.f16_type()),
            DType::BF16 => Ok(self.cx.bf16_type()),
            _ => Err(self.malformed(format!("{dt} is not a 16-bit float type"))),
        }
    }

    /// An f32 rounded to a 16-bit float of `dt` (round to nearest even).
    pub fn attn_to_half(&self, dt: DType, v: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        let t = self.attn_half_type(dt)?;
        self.b.build_float_trunc(v, t, "").map_err(|e| self.e(e))
    }

    /// Two f32 packed into one 32-bit mma operand register of `dt`: `lo` in bits 0..16
    /// (the element with the smaller column / row index of a fragment pair), `hi` above.
    /// bf16 operands are `i32`, f16 operands `<2 x half>` (the intrinsics' types).
    pub fn attn_pack2(
        &self,
        dt: DType,
        lo: FloatValue<'ctx>,
        hi: FloatValue<'ctx>,
    ) -> R<BasicValueEnum<'ctx>> {
        let t = self.attn_half_type(dt)?;
        let vt = t.vec_type(2);
        let l = self.attn_to_half(dt, lo)?;
        let h = self.attn_to_half(dt, hi)?;
        let v = self
            .b
            .build_insert_element(vt.get_undef(), l, self.i32c(0), "")
            .map_err(|e| self.e(e))?;
        let v = self
            .b
            .build_insert_element(v, h, self.i32c(1), "")
            .map_err(|e| self.e(e))?;
        self.attn_operand(dt, v.into())
    }

    /// A 32-bit value (`i32` or `<2 x T>`) as the mma operand type of `dt`.
    pub fn attn_operand(&self, dt: DType, v: BasicValueEnum<'ctx>) -> R<BasicValueEnum<'ctx>> {
        let ty: BasicTypeEnum<'ctx> = match dt {
            DType::BF16 => self.cx.i32_type().into(),
            DType::F16 => self.cx.f16_type().vec_type(2).into(),
            _ => return Err(self.malformed(format!("no mma operand type for {dt}"))),
        };
        if v.get_type() == ty {
            return Ok(v);
        }
        self.b.build_bit_cast(v, ty, "").map_err(|e| self.e(e))
    }

    /// `d = a · b + c` on one m16n8k16 tile (`mma.sync.aligned.m16n8k16.row.col`, f32
    /// accumulation) with f16 or bf16 inputs: [`Kb::mma`] with the operands as 32-bit
    /// registers. `a`: the four A registers (rows `g`, `g+8` × columns `2t..2t+2`, then the
    /// same rows × columns `8+2t..`), `b`: the two B registers (rows `2t..2t+2` and `8+2t..`
    /// of column `g`), `c`/result: rows `g`, `g+8` × columns `2t, 2t+1` — `g = lane / 4`,
    /// `t = lane % 4`.
    pub fn attn_mma(
        &self,
        dt: DType,
        a: &[BasicValueEnum<'ctx>; 4],
        b: &[BasicValueEnum<'ctx>; 2],
        c: &[FloatValue<'ctx>; 4],
    ) -> R<[FloatValue<'ctx>; 4]> {
        let kind = match dt {
            DType::BF16 => MmaKind::Bf16,
            DType::F16 => MmaKind::F16,
            _ => return Err(self.unsupported(format!("tensor-core attention in {dt}"))),
        };
        let reg = |v: BasicValueEnum<'ctx>| -> R<IntValue<'ctx>> {
            let i = self.cx.i32_type();
            if v.get_type() == i.into() {
                return Ok(v.into_int_value());
            }
            Ok(self
                .b
                .build_bit_cast(v, i, "")
                .map_err(|e| self.e(e))?
                .into_int_value())
        };
        let r = self.mma(
            kind,
            [reg(a[0])?, reg(a[1])?, reg(a[2])?, reg(a[3])?],
            [reg(b[0])?, reg(b[1])?],
            c.map(BasicValueEnum::from),
        )?;
        Ok(r.map(|v| v.into_float_value()))
    }

    /// `cp.async.cg.shared.global` of 16 bytes from global `src` to shared byte `dst_off`
    /// ([`Kb::cp_async_16`]); only the first `src_bytes` (i32, 0 or 16) are read, the rest
    /// is zero-filled.
    pub fn attn_cp_async16(
        &self,
        dst_off: IntValue<'ctx>,
        src: PointerValue<'ctx>,
        src_bytes: IntValue<'ctx>,
    ) -> R<()> {
        let dst = self.attn_smem(dst_off)?;
        self.cp_async_16(dst, src, src_bytes)
    }

    /// Address of element `idx` (i64) of argument `arg` whose elements are `elem_bytes`
    /// wide, as a global pointer.
    pub fn attn_gptr(
        &self,
        arg: u32,
        idx: IntValue<'ctx>,
        elem_bytes: u64,
    ) -> R<PointerValue<'ctx>> {
        let off = self.mul(idx, self.i64c(elem_bytes as i64))?;
        self.byte_ptr(arg, off)
    }

    /// True (i1) when argument `arg`'s base address is a multiple of `align` bytes.
    pub fn attn_arg_aligned(&self, arg: u32, align: u64) -> R<IntValue<'ctx>> {
        let p = self.arg(arg)?;
        let a = self
            .b
            .build_ptr_to_int(p, self.cx.i64_type(), "")
            .map_err(|e| self.e(e))?;
        let r = self
            .b
            .build_and(a, self.i64c(align as i64 - 1), "")
            .map_err(|e| self.e(e))?;
        self.icmp(IntPredicate::EQ, r, self.i64c(0))
    }

    /// True (i1) when the i64 `v` is a multiple of the power of two `m`.
    pub fn attn_multiple(&self, v: IntValue<'ctx>, m: u64) -> R<IntValue<'ctx>> {
        let r = self
            .b
            .build_and(v, self.i64c(m as i64 - 1), "")
            .map_err(|e| self.e(e))?;
        self.icmp(IntPredicate::EQ, r, self.i64c(0))
    }
}
