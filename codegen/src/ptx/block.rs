//! Block-level building blocks shared by the row-reduction, scan and convolution
//! generators: mutable kernel variables (entry-block allocas that LLVM promotes to
//! registers), typed shared-memory access, warp shuffles of [`Val`]s and a block-wide
//! reduction (warp butterfly, then one slot per warp in shared memory).

use super::builder::{Kb, R, Val};
use super::tiles::WARP;
use inkwell::types::BasicTypeEnum;
use inkwell::values::{BasicValueEnum, IntValue, PointerValue};

/// A mutable scalar of generated code: an `alloca` in the entry block (promoted to a
/// register by LLVM's SROA), read with [`Kb::get`] and written with [`Kb::set`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Var<'ctx> {
    ptr: PointerValue<'ctx>,
    ty: BasicTypeEnum<'ctx>,
    float: bool,
}

/// What a block reduction combines: two tuples of the same shape into one.
pub(crate) type Combine<'c, 'ctx, 'a> =
    &'c dyn Fn(&Kb<'ctx, 'a>, &[Val<'ctx>], &[Val<'ctx>]) -> R<Vec<Val<'ctx>>>;

/// Bytes per component slot of [`Kb::block_reduce`]'s shared scratch (one per warp).
const SLOT: i64 = 8;

impl<'ctx, 'a> Kb<'ctx, 'a> {
    fn alloca(&self, ty: BasicTypeEnum<'ctx>, float: bool) -> R<Var<'ctx>> {
        let entry = self
            .f
            .get_first_basic_block()
            .ok_or_else(|| self.malformed("kernel has no entry block"))?;
        let tb = self.cx.create_builder();
        match entry.get_first_instruction() {
            Some(i) => tb.position_before(&i),
            None => tb.position_at_end(entry),
        }
        let ptr = tb.build_alloca(ty, "var").map_err(|e| self.e(e))?;
        Ok(Var { ptr, ty, float })
    }

    /// A new f32 variable set to `init` at the current position.
    pub fn var_f(&self, init: inkwell::values::FloatValue<'ctx>) -> R<Var<'ctx>> {
        let v = self.alloca(self.cx.f32_type().into(), true)?;
        self.set(v, Val::F(init))?;
        Ok(v)
    }

    /// A new i64 variable set to `init` at the current position.
    pub fn var_i(&self, init: IntValue<'ctx>) -> R<Var<'ctx>> {
        let v = self.alloca(self.cx.i64_type().into(), false)?;
        self.set(v, Val::I(init))?;
        Ok(v)
    }

    /// A new variable of `init`'s kind set to it.
    pub fn var(&self, init: Val<'ctx>) -> R<Var<'ctx>> {
        match init {
            Val::F(f) => self.var_f(f),
            Val::I(i) => self.var_i(i),
        }
    }

    /// Read a variable.
    pub fn get(&self, v: Var<'ctx>) -> R<Val<'ctx>> {
        let x = self.b.build_load(v.ty, v.ptr, "").map_err(|e| self.e(e))?;
        Ok(if v.float {
            Val::F(x.into_float_value())
        } else {
            Val::I(x.into_int_value())
        })
    }

    /// Write a variable (an f32 variable takes floats, an i64 variable integers).
    pub fn set(&self, v: Var<'ctx>, x: Val<'ctx>) -> R<()> {
        let x: BasicValueEnum = match (x, v.float) {
            (Val::F(f), true) => f.into(),
            (Val::I(i), false) => i.into(),
            _ => return Err(self.malformed("variable written with a value of the other kind")),
        };
        self.b
            .build_store(v.ptr, x)
            .map(|_| ())
            .map_err(|e| self.e(e))
    }

    /// Read an f32 variable.
    pub fn get_f(&self, v: Var<'ctx>) -> R<inkwell::values::FloatValue<'ctx>> {
        let x = self.get(v)?;
        self.as_f(x)
    }

    /// Read an i64 variable.
    pub fn get_i(&self, v: Var<'ctx>) -> R<IntValue<'ctx>> {
        let x = self.get(v)?;
        self.as_i(x)
    }

    // ---- shared memory -------------------------------------------------------------------

    /// Address of byte `off` (i64) of the dynamic shared memory.
    pub fn smem_ptr(&self, off: IntValue<'ctx>) -> R<PointerValue<'ctx>> {
        let base = self.dyn_shared()?;
        self.elem_ptr(base, self.cx.i8_type(), off)
    }

    /// Store an f32 / i64 [`Val`] at byte `off` of the dynamic shared memory (4 / 8 bytes,
    /// naturally aligned by the caller).
    pub fn smem_store(&self, off: IntValue<'ctx>, v: Val<'ctx>) -> R<()> {
        let p = self.smem_ptr(off)?;
        let x: BasicValueEnum = match v {
            Val::F(f) => f.into(),
            Val::I(i) => i.into(),
        };
        self.b.build_store(p, x).map(|_| ()).map_err(|e| self.e(e))
    }

    /// Load an f32 (`float`) or i64 from byte `off` of the dynamic shared memory.
    pub fn smem_load(&self, off: IntValue<'ctx>, float: bool) -> R<Val<'ctx>> {
        let p = self.smem_ptr(off)?;
        if float {
            let x = self
                .b
                .build_load(self.cx.f32_type(), p, "")
                .map_err(|e| self.e(e))?;
            Ok(Val::F(x.into_float_value()))
        } else {
            let x = self
                .b
                .build_load(self.cx.i64_type(), p, "")
                .map_err(|e| self.e(e))?;
            Ok(Val::I(x.into_int_value()))
        }
    }

    // ---- warp shuffles -------------------------------------------------------------------

    /// Butterfly shuffle of a [`Val`] across the full warp (an i64 as two i32 halves).
    pub fn shfl_xor_val(&self, v: Val<'ctx>, lane_mask: i32) -> R<Val<'ctx>> {
        match v {
            Val::F(f) => Ok(Val::F(self.shfl_xor_f32(f, lane_mask)?)),
            Val::I(i) => {
                let lo = self.trunc32(i)?;
                let hi = self
                    .b
                    .build_right_shift(i, self.i64c(32), false, "")
                    .map_err(|e| self.e(e))?;
                let hi = self.trunc32(hi)?;
                let lo = self.shfl_xor_i32(lo, lane_mask)?;
                let hi = self.shfl_xor_i32(hi, lane_mask)?;
                let lo = self.zext64(lo)?;
                let hi = self.zext64(hi)?;
                let hi = self
                    .b
                    .build_left_shift(hi, self.i64c(32), "")
                    .map_err(|e| self.e(e))?;
                Ok(Val::I(self.b.build_or(hi, lo, "").map_err(|e| self.e(e))?))
            }
        }
    }

    /// Reduce a tuple of per-thread values over the whole block with `combine` (which must
    /// be commutative and associative on the values it sees). Every thread of the block
    /// must call this (it contains barriers) and every thread gets the same result.
    ///
    /// Scheme: a butterfly over the warp (after which every lane holds the warp's result),
    /// lane 0 of each warp writes it to shared slot `[component][warp]` (8 bytes each,
    /// from byte 0 of the dynamic shared memory: `components · warps · 8` bytes), a
    /// barrier, every thread folds the `warps` slots in warp order, a second barrier so the
    /// slots may be reused. `threads` is the block size (a multiple of 32).
    pub fn block_reduce(
        &mut self,
        vals: Vec<Val<'ctx>>,
        threads: u32,
        combine: Combine<'_, 'ctx, 'a>,
    ) -> R<Vec<Val<'ctx>>> {
        let mut vals = vals;
        let mut m = (WARP / 2) as i32;
        while m >= 1 {
            let other = vals
                .iter()
                .map(|&v| self.shfl_xor_val(v, m))
                .collect::<R<Vec<_>>>()?;
            vals = combine(self, &vals, &other)?;
            m /= 2;
        }
        let warps = i64::from((threads / WARP).max(1));
        let tid = self.sreg64("tid.x")?;
        let lane = self
            .b
            .build_and(tid, self.i64c(i64::from(WARP) - 1), "")
            .map_err(|e| self.e(e))?;
        let warp = self.udiv(tid, self.i64c(i64::from(WARP)))?;
        let is_lane0 = self.icmp(inkwell::IntPredicate::EQ, lane, self.i64c(0))?;
        let kinds: Vec<bool> = vals.iter().map(|v| matches!(v, Val::F(_))).collect();
        let to_store = vals.clone();
        self.if_then(is_lane0, |kb| {
            for (c, &v) in to_store.iter().enumerate() {
                let slot = kb.add(kb.i64c(c as i64 * warps), warp)?;
                let off = kb.mul(slot, kb.i64c(SLOT))?;
                kb.smem_store(off, v)?;
            }
            Ok(())
        })?;
        self.barrier()?;
        let mut acc: Vec<Val<'ctx>> = Vec::with_capacity(kinds.len());
        for (c, &f) in kinds.iter().enumerate() {
            acc.push(self.smem_load(self.i64c(c as i64 * warps * SLOT), f)?);
        }
        for w in 1..warps {
            let mut other = Vec::with_capacity(kinds.len());
            for (c, &f) in kinds.iter().enumerate() {
                other.push(self.smem_load(self.i64c((c as i64 * warps + w) * SLOT), f)?);
            }
            acc = combine(self, &acc, &other)?;
        }
        self.barrier()?;
        Ok(acc)
    }
}
