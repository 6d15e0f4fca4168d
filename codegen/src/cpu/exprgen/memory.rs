//! Typed loads and stores of kernel arguments: each dtype's memory format to and from the
//! f32 / i64 values of generated code.

use super::{Gen, Val, fv, iv};
use crate::cpu::CpuError;
use crate::cpu::helpers::Helper;
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value, types};
use dqc_ir::DType;

impl Gen<'_, '_> {
    /// Load element `off` of a kernel argument. Arguments are read-only while a kernel
    /// runs; a `movable` load (in bounds wherever the loop runs: not under a piecewise
    /// branch, not a gather) may be hoisted out of the loop by Cranelift.
    pub(super) fn load_mem(
        &mut self,
        p: Value,
        dt: DType,
        off: Value,
        movable: bool,
    ) -> Result<Val, CpuError> {
        let fl = if movable {
            MemFlagsData::trusted().with_readonly().with_can_move()
        } else {
            MemFlagsData::trusted().with_readonly()
        };
        Ok(match dt {
            DType::F32 => {
                let a = self.addr(p, off, 4);
                fv(self.b.ins().load(types::F32, fl, a, 0))
            }
            DType::F16 => {
                let a = self.addr(p, off, 2);
                let bits = self.b.ins().uload16(types::I32, fl, a, 0);
                fv(self.call1(Helper::F16ToF32, &[bits])?)
            }
            DType::BF16 => {
                let a = self.addr(p, off, 2);
                let bits = self.b.ins().uload16(types::I32, fl, a, 0);
                let s = self.b.ins().ishl_imm_s(bits, 16);
                fv(self.b.ins().bitcast(types::F32, MemFlagsData::new(), s))
            }
            DType::F8E4M3 | DType::F8E5M2 => {
                let a = self.addr(p, off, 1);
                let bits = self.b.ins().uload8(types::I32, fl, a, 0);
                let h = if dt == DType::F8E4M3 {
                    Helper::E4m3ToF32
                } else {
                    Helper::E5m2ToF32
                };
                fv(self.call1(h, &[bits])?)
            }
            DType::Fp4E2M1 => fv(self.call1(Helper::LoadFp4, &[p, off])?),
            DType::I64 => {
                let a = self.addr(p, off, 8);
                iv(self.b.ins().load(types::I64, fl, a, 0))
            }
            DType::I32 => {
                let a = self.addr(p, off, 4);
                iv(self.b.ins().sload32(fl, a, 0))
            }
            DType::I8 => {
                let a = self.addr(p, off, 1);
                iv(self.b.ins().sload8(types::I64, fl, a, 0))
            }
            DType::U8 | DType::Bool => {
                let a = self.addr(p, off, 1);
                iv(self.b.ins().uload8(types::I64, fl, a, 0))
            }
            DType::I4 => iv(self.call1(Helper::LoadI4, &[p, off])?),
            DType::F8E4M3Fnuz | DType::F8E5M2Fnuz => {
                let a = self.addr(p, off, 1);
                let bits = self.b.ins().uload8(types::I32, fl, a, 0);
                let h = if dt == DType::F8E4M3Fnuz {
                    Helper::E4m3FnuzToF32
                } else {
                    Helper::E5m2FnuzToF32
                };
                fv(self.call1(h, &[bits])?)
            }
        })
    }

    pub(super) fn store_mem(
        &mut self,
        p: Value,
        dt: DType,
        off: Value,
        v: Val,
    ) -> Result<(), CpuError> {
        let fl = MemFlagsData::trusted();
        match dt {
            DType::F32 => {
                let x = self.as_f(v);
                let a = self.addr(p, off, 4);
                self.b.ins().store(fl, x, a, 0);
            }
            DType::F16 => {
                let x = self.as_f(v);
                let bits = self.call1(Helper::F32ToF16, &[x])?;
                let a = self.addr(p, off, 2);
                self.b.ins().istore16(fl, bits, a, 0);
            }
            DType::BF16 => {
                let x = self.as_f(v);
                let bits = self.bf16_bits(x);
                let a = self.addr(p, off, 2);
                self.b.ins().istore16(fl, bits, a, 0);
            }
            DType::F8E4M3 | DType::F8E5M2 => {
                let x = self.as_f(v);
                let h = if dt == DType::F8E4M3 {
                    Helper::F32ToE4m3
                } else {
                    Helper::F32ToE5m2
                };
                let bits = self.call1(h, &[x])?;
                let a = self.addr(p, off, 1);
                self.b.ins().istore8(fl, bits, a, 0);
            }
            DType::Fp4E2M1 => {
                let x = self.as_f(v);
                self.call(Helper::StoreFp4, &[p, off, x])?;
            }
            DType::F8E4M3Fnuz | DType::F8E5M2Fnuz => {
                let x = self.as_f(v);
                let h = if dt == DType::F8E4M3Fnuz {
                    Helper::F32ToE4m3Fnuz
                } else {
                    Helper::F32ToE5m2Fnuz
                };
                let bits = self.call1(h, &[x])?;
                let a = self.addr(p, off, 1);
                self.b.ins().istore8(fl, bits, a, 0);
            }
            DType::I64 => {
                let x = self.as_i(v);
                let a = self.addr(p, off, 8);
                self.b.ins().store(fl, x, a, 0);
            }
            DType::I32 => {
                let x = self.as_i(v);
                let a = self.addr(p, off, 4);
                self.b.ins().istore32(fl, x, a, 0);
            }
            DType::I8 | DType::U8 | DType::Bool => {
                let x = self.as_i(v);
                let a = self.addr(p, off, 1);
                self.b.ins().istore8(fl, x, a, 0);
            }
            DType::I4 => {
                let x = self.as_i(v);
                self.call(Helper::StoreI4, &[p, off, x])?;
            }
        }
        Ok(())
    }
}
