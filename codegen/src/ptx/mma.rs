//! Tensor-core and asynchronous-copy building blocks for sm_80+ kernels (GEMM, attention):
//! warp-level `mma.sync` (m16n8k16 for 16-bit floats, m16n8k32 for 8-bit operands),
//! `ldmatrix` fragment loads, `cp.async` global → shared copies with zero fill, shared
//! memory addressing, entry-block allocas, guarded loads and if/else.
//!
//! Fragment layouts (PTX ISA, "Matrix fragments for mma.m16n8k16 / m16n8k32"), with
//! `g = lane / 4` (group) and `t = lane % 4` (thread in group). Every operand register is
//! 32 bits holding 4 bytes of consecutive `k` (two 16-bit or four 8-bit elements), so in
//! *bytes* the 16-bit k16 and the 8-bit k32 shapes are the same 16 × 32-byte A tile and
//! 32-byte × 8 B tile:
//! - A (row-major, `16 × 32 bytes`): `a[0]` row `g`, k-bytes `4t..4t+4`; `a[1]` row `g + 8`;
//!   `a[2]` row `g`, k-bytes `+16`; `a[3]` row `g + 8`, k-bytes `+16`.
//! - B (column-major, `32 bytes × 8`): `b[0]` column `g`, k-bytes `4t..4t+4`; `b[1]`
//!   k-bytes `+16`.
//! - C/D (`16 × 8`, f32 or s32): `c[0], c[1]` row `g`, columns `2t, 2t + 1`; `c[2], c[3]`
//!   row `g + 8`, same columns.
//!
//! [`Kb::ldmatrix_x4`] loads four 8 × 16-byte matrices; lane `l` supplies the address of row
//! `l % 8` of matrix `l / 8`, and register `q` of every lane receives row `g`, bytes
//! `4t..4t+4` of matrix `q` — exactly one A or B fragment register when matrix `q` is the
//! right 8-row slice (see [`Kb::ldmatrix_x4`] for the address patterns).

use super::builder::{Kb, R, SHARED, Val};
use inkwell::AddressSpace;
use inkwell::types::BasicTypeEnum;
use inkwell::values::{BasicValueEnum, IntValue, PointerValue};

/// The operand types of a warp-level `mma.sync` this module emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MmaKind {
    /// bf16 × bf16 → f32, m16n8k16.
    Bf16,
    /// f16 × f16 → f32, m16n8k16.
    F16,
    /// s8 × s8 → s32, m16n8k32 (wrapping accumulation: callers bound `k`).
    S8,
    /// u8 × u8 → s32, m16n8k32 (wrapping accumulation: callers bound `k`).
    U8,
    /// e4m3 × e4m3 → f32, m16n8k32 (sm_89+).
    E4m3,
}

impl MmaKind {
    /// Contraction elements per instruction (16 or 32).
    pub fn k(self) -> u32 {
        match self {
            MmaKind::Bf16 | MmaKind::F16 => 16,
            MmaKind::S8 | MmaKind::U8 | MmaKind::E4m3 => 32,
        }
    }

    /// Bytes per operand element.
    pub fn elem_bytes(self) -> u32 {
        match self {
            MmaKind::Bf16 | MmaKind::F16 => 2,
            MmaKind::S8 | MmaKind::U8 | MmaKind::E4m3 => 1,
        }
    }

    /// True when the accumulator is s32 (else f32).
    pub fn int_acc(self) -> bool {
        matches!(self, MmaKind::S8 | MmaKind::U8)
    }

    fn intrinsic(self) -> &'static str {
        match self {
            MmaKind::Bf16 => "llvm.nvvm.mma.m16n8k16.row.col.bf16",
            MmaKind::F16 => "llvm.nvvm.mma.m16n8k16.row.col.f32.f32",
            MmaKind::S8 => "llvm.nvvm.mma.m16n8k32.row.col.s8",
            MmaKind::U8 => "llvm.nvvm.mma.m16n8k32.row.col.u8",
            MmaKind::E4m3 => "llvm.nvvm.mma.m16n8k32.row.col.f32.e4m3.e4m3.f32",
        }
    }
}

impl<'ctx> Kb<'ctx, '_> {
    /// Pointer to byte `off` (i64) of the kernel's dynamic shared memory.
    pub fn smem_at(&self, off: IntValue<'ctx>) -> R<PointerValue<'ctx>> {
        let base = self.dyn_shared()?;
        self.elem_ptr(base, self.cx.i8_type(), off)
    }

    /// An `alloca` of `ty` in the entry block (so LLVM promotes it to registers), for values
    /// carried across loops: accumulators, running sums.
    pub fn entry_alloca(&self, ty: BasicTypeEnum<'ctx>, name: &str) -> R<PointerValue<'ctx>> {
        let entry = self
            .f
            .get_first_basic_block()
            .ok_or_else(|| self.malformed("kernel has no entry block"))?;
        let b = self.cx.create_builder();
        match entry.get_first_instruction() {
            Some(i) => b.position_before(&i),
            None => b.position_at_end(entry),
        }
        b.build_alloca(ty, name).map_err(|e| self.e(e))
    }

    /// `cond ? *ptr : zero` of type `ty`; the load is executed only when `cond` (i1) holds,
    /// so `ptr` may be out of bounds otherwise.
    pub fn guarded_load(
        &self,
        cond: IntValue<'ctx>,
        ty: BasicTypeEnum<'ctx>,
        ptr: PointerValue<'ctx>,
    ) -> R<BasicValueEnum<'ctx>> {
        let pre = self.current()?;
        let then = self.block("ld");
        let join = self.block("ld_join");
        self.cond_br(cond, then, join)?;
        self.b.position_at_end(then);
        let v = self.b.build_load(ty, ptr, "").map_err(|e| self.e(e))?;
        let then_end = self.current()?;
        self.br(join)?;
        self.b.position_at_end(join);
        let phi = self.b.build_phi(ty, "").map_err(|e| self.e(e))?;
        let zero = match ty {
            BasicTypeEnum::FloatType(t) => BasicValueEnum::from(t.const_zero()),
            BasicTypeEnum::IntType(t) => BasicValueEnum::from(t.const_zero()),
            _ => return Err(self.malformed("guarded load of a non-scalar type")),
        };
        phi.add_incoming(&[(&zero, pre), (&v, then_end)]);
        Ok(phi.as_basic_value())
    }

    /// `ldmatrix.sync.aligned.m8n8.x4.shared.b16`: lane `l` gives the shared address of row
    /// `l % 8` of matrix `l / 8` (16 bytes, 16-byte aligned); returns register `q` = row
    /// `lane / 4`, bytes `4·(lane % 4)..+4` of matrix `q`.
    ///
    /// For an A fragment (m16 × 32 bytes at `row0`, `kb0` of a k-contiguous tile) lane `l`
    /// points at row `row0 + l % 8 + 8·((l / 8) % 2)`, byte `kb0 + 16·(l / 16)`; for two B
    /// fragments (columns `n0..n0 + 16` of an n-major, k-contiguous tile) at column
    /// `n0 + l % 8 + 8·(l / 16)`, byte `kb0 + 16·((l / 8) % 2)`: registers 0, 1 are the
    /// fragment of columns `n0..n0 + 8`, registers 2, 3 that of `n0 + 8..n0 + 16`.
    pub fn ldmatrix_x4(&self, p: PointerValue<'ctx>) -> R<[IntValue<'ctx>; 4]> {
        self.ldmatrix4("llvm.nvvm.ldmatrix.sync.aligned.m8n8.x4.b16.p3", p)
    }

    /// `ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16`: as [`Kb::ldmatrix_x4`] but each
    /// 8 × 8 matrix of 16-bit elements transposed: register `q` of lane `l` holds elements
    /// `(2·(l % 4), l / 4)` and `(2·(l % 4) + 1, l / 4)` (row, column) of matrix `q`.
    ///
    /// For two B fragments of a k16 step from an n-major tile (row = k, 16-bit elements
    /// along n) lane `l` points at row `k0 + l % 8 + 8·((l / 8) % 2)`, column
    /// `n0 + 8·(l / 16)`: registers 0, 1 are the fragment of columns `n0..n0 + 8`, registers
    /// 2, 3 that of `n0 + 8..n0 + 16` (the same pairing as the k-major pattern).
    pub fn ldmatrix_x4_trans(&self, p: PointerValue<'ctx>) -> R<[IntValue<'ctx>; 4]> {
        self.ldmatrix4("llvm.nvvm.ldmatrix.sync.aligned.m8n8.x4.trans.b16.p3", p)
    }

    fn ldmatrix4(&self, name: &str, p: PointerValue<'ctx>) -> R<[IntValue<'ctx>; 4]> {
        let i32t = self.cx.i32_type();
        let st = self
            .cx
            .struct_type(&[i32t.into(), i32t.into(), i32t.into(), i32t.into()], false);
        let r = self
            .call(name, Some(st.into()), &[p.into()])?
            .ok_or_else(|| self.malformed("ldmatrix returned nothing"))?
            .into_struct_value();
        let mut out = [i32t.const_zero(); 4];
        for (q, o) in out.iter_mut().enumerate() {
            *o = self
                .b
                .build_extract_value(r, q as u32, "")
                .map_err(|e| self.e(e))?
                .into_int_value();
        }
        Ok(out)
    }

    /// One warp-level `mma.sync` of `kind`: `d = a · b + c` with the fragments of the module
    /// docs (`a`, `b` as raw 32-bit registers; `c` f32 or i32 by [`MmaKind::int_acc`]).
    pub fn mma(
        &self,
        kind: MmaKind,
        a: [IntValue<'ctx>; 4],
        b: [IntValue<'ctx>; 2],
        c: [BasicValueEnum<'ctx>; 4],
    ) -> R<[BasicValueEnum<'ctx>; 4]> {
        let acc_t: BasicTypeEnum = if kind.int_acc() {
            self.cx.i32_type().into()
        } else {
            self.cx.f32_type().into()
        };
        let st = self.cx.struct_type(&[acc_t; 4], false);
        // f16 operands are <2 x half> in LLVM's signature; the others are i32.
        let op = |v: IntValue<'ctx>| -> R<BasicValueEnum<'ctx>> {
            if kind == MmaKind::F16 {
                self.b
                    .build_bit_cast(v, self.cx.f16_type().vec_type(2), "")
                    .map_err(|e| self.e(e))
            } else {
                Ok(v.into())
            }
        };
        let mut args = Vec::with_capacity(10);
        for &v in &a {
            args.push(op(v)?);
        }
        for &v in &b {
            args.push(op(v)?);
        }
        args.extend(c);
        let r = self
            .call(kind.intrinsic(), Some(st.into()), &args)?
            .ok_or_else(|| self.malformed("mma returned nothing"))?
            .into_struct_value();
        let mut out = c;
        for (q, o) in out.iter_mut().enumerate() {
            *o = self
                .b
                .build_extract_value(r, q as u32, "")
                .map_err(|e| self.e(e))?;
        }
        Ok(out)
    }

    /// `cp.async.cg.shared.global [dst], [src], 16, src_bytes`: copy `src_bytes` (i32, 0 to
    /// 16) bytes from global `src` to shared `dst` and zero the rest of the 16 bytes. Both
    /// addresses 16-byte aligned; with `src_bytes == 0` nothing is read (`src` must still be
    /// a valid global address expression).
    pub fn cp_async_16(
        &self,
        dst: PointerValue<'ctx>,
        src: PointerValue<'ctx>,
        src_bytes: IntValue<'ctx>,
    ) -> R<()> {
        debug_assert_eq!(
            dst.get_type().get_address_space(),
            AddressSpace::from(SHARED)
        );
        self.call(
            "llvm.nvvm.cp.async.cg.shared.global.16.s",
            None,
            &[dst.into(), src.into(), src_bytes.into()],
        )?;
        Ok(())
    }

    /// `cp.async.commit_group`: close the group of copies issued since the last commit.
    pub fn cp_async_commit(&self) -> R<()> {
        self.call("llvm.nvvm.cp.async.commit.group", None, &[])?;
        Ok(())
    }

    /// `cp.async.wait_group n`: wait until at most `n` committed groups are pending (this
    /// thread's copies only: follow with a barrier before reading other threads' data).
    pub fn cp_async_wait(&self, n: i32) -> R<()> {
        self.call(
            "llvm.nvvm.cp.async.wait.group",
            None,
            &[self.i32c(n).into()],
        )?;
        Ok(())
    }

    /// `if (c) then_() else else_()`; both bodies leave the builder in a block that falls
    /// through to the join.
    pub fn if_else(
        &mut self,
        c: IntValue<'ctx>,
        then_: impl FnOnce(&mut Self) -> R<()>,
        else_: impl FnOnce(&mut Self) -> R<()>,
    ) -> R<()> {
        let tb = self.block("then");
        let eb = self.block("else");
        let join = self.block("join");
        self.cond_br(c, tb, eb)?;
        self.b.position_at_end(tb);
        then_(self)?;
        self.br(join)?;
        self.b.position_at_end(eb);
        else_(self)?;
        self.br(join)?;
        self.b.position_at_end(join);
        Ok(())
    }

    /// `c ? f() : 0` for a float-or-integer [`Val`] of kind `float`: `f` (which may load out
    /// of bounds when `c` is false) runs only when `c` (i1) holds.
    pub fn guarded_val(
        &mut self,
        c: IntValue<'ctx>,
        float: bool,
        f: impl FnOnce(&mut Self) -> R<Val<'ctx>>,
    ) -> R<Val<'ctx>> {
        let pre = self.current()?;
        let then = self.block("ld");
        let join = self.block("ld_join");
        self.cond_br(c, then, join)?;
        self.b.position_at_end(then);
        let v = f(self)?;
        let v: BasicValueEnum = if float {
            self.as_f(v)?.into()
        } else {
            self.as_i(v)?.into()
        };
        let then_end = self.current()?;
        self.br(join)?;
        self.b.position_at_end(join);
        let ty = v.get_type();
        let phi = self.b.build_phi(ty, "").map_err(|e| self.e(e))?;
        let zero: BasicValueEnum = if float {
            self.cx.f32_type().const_zero().into()
        } else {
            self.cx.i64_type().const_zero().into()
        };
        phi.add_incoming(&[(&zero, pre), (&v, then_end)]);
        let r = phi.as_basic_value();
        Ok(if float {
            Val::F(r.into_float_value())
        } else {
            Val::I(r.into_int_value())
        })
    }
}
