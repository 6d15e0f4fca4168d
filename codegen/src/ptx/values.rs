//! Typed element loads and stores, dtype rounding and wrapping, and the math functions
//! generated code uses (built from NVPTX's approximate `ex2` / `lg2` with range reduction,
//! polynomials where those are not accurate enough).

use super::builder::{Kb, R, Val};
use dqc_ir::DType;
use inkwell::values::{FloatValue, IntValue};
use inkwell::{AddressSpace, FloatPredicate, IntPredicate};

impl<'ctx> Kb<'ctx, '_> {
    /// The value as f32 (integers converted, bools 0/1).
    pub fn as_f(&self, v: Val<'ctx>) -> R<FloatValue<'ctx>> {
        match v {
            Val::F(f) => Ok(f),
            Val::I(i) => self
                .b
                .build_signed_int_to_float(i, self.cx.f32_type(), "")
                .map_err(|e| self.e(e)),
        }
    }

    /// The value as i64 (floats truncated toward zero, saturating; NaN → 0).
    pub fn as_i(&self, v: Val<'ctx>) -> R<IntValue<'ctx>> {
        match v {
            Val::I(i) => Ok(i),
            Val::F(f) => {
                let r = self.call(
                    "llvm.fptosi.sat.i64.f32",
                    Some(self.cx.i64_type().into()),
                    &[f.into()],
                )?;
                r.map(|v| v.into_int_value())
                    .ok_or_else(|| self.malformed("fptosi.sat returned nothing"))
            }
        }
    }

    /// An i1 as an i64 0/1.
    pub fn bool64(&self, c: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        self.zext64(c)
    }

    /// Float binary op shorthands.
    pub fn fadd(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        self.b.build_float_add(a, b, "").map_err(|e| self.e(e))
    }
    /// `a - b`.
    pub fn fsub(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        self.b.build_float_sub(a, b, "").map_err(|e| self.e(e))
    }
    /// `a * b`.
    pub fn fmul(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        self.b.build_float_mul(a, b, "").map_err(|e| self.e(e))
    }
    /// `a / b` (IEEE, round to nearest).
    pub fn fdiv(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        self.b.build_float_div(a, b, "").map_err(|e| self.e(e))
    }
    /// `a * b + c`, fused.
    pub fn fma(
        &self,
        a: FloatValue<'ctx>,
        b: FloatValue<'ctx>,
        c: FloatValue<'ctx>,
    ) -> R<FloatValue<'ctx>> {
        self.fcall("llvm.fma.f32", &[a, b, c])
    }
    /// Float comparison (ordered unless the predicate says otherwise).
    pub fn fcmp(
        &self,
        p: FloatPredicate,
        a: FloatValue<'ctx>,
        b: FloatValue<'ctx>,
    ) -> R<IntValue<'ctx>> {
        self.b
            .build_float_compare(p, a, b, "")
            .map_err(|e| self.e(e))
    }
    /// Float select.
    pub fn fsel(
        &self,
        c: IntValue<'ctx>,
        a: FloatValue<'ctx>,
        b: FloatValue<'ctx>,
    ) -> R<FloatValue<'ctx>> {
        Ok(self
            .b
            .build_select(c, a, b, "")
            .map_err(|e| self.e(e))?
            .into_float_value())
    }
    /// NaN-propagating maximum.
    pub fn fmax(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        self.fcall("llvm.maximum.f32", &[a, b])
    }
    /// NaN-propagating minimum.
    pub fn fmin(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        self.fcall("llvm.minimum.f32", &[a, b])
    }
    /// `|x|`.
    pub fn fabs(&self, x: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        self.fcall("llvm.fabs.f32", &[x])
    }
    fn bits_f(&self, x: IntValue<'ctx>) -> R<FloatValue<'ctx>> {
        Ok(self
            .b
            .build_bit_cast(x, self.cx.f32_type(), "")
            .map_err(|e| self.e(e))?
            .into_float_value())
    }

    // ---- math --------------------------------------------------------------------------

    /// `2^x` for x already reduced or moderate (NVPTX `ex2.approx`, ~2 ulp).
    pub fn exp2_approx(&self, x: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        if self.host {
            return self.fcall("llvm.exp2.f32", &[x]);
        }
        self.fcall("llvm.nvvm.ex2.approx.f32", &[x])
    }

    /// `a / b` by `div.approx.f32` (`a · (1/b)`, 2 ulp for `|b|` in `[2^-126, 2^126]`, 0
    /// for finite `a` above); IEEE division in host mode.
    pub fn div_approx(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        if self.host {
            return self.fdiv(a, b);
        }
        self.fcall("llvm.nvvm.div.approx.f", &[a, b])
    }

    /// `e^x`: `n = rint(x·log2 e)`, `r = x − n·ln2` (two-part ln 2), `e^x = 2^n · 2^(r·log2 e)`
    /// — relative error a few ulp over the whole range; overflow to +inf, underflow to 0.
    pub fn exp(&self, x: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        let log2e = self.f32c(std::f32::consts::LOG2_E);
        let t = self.fmul(x, log2e)?;
        let n = self.fcall("llvm.rint.f32", &[t])?;
        // clamp n so that 2^n stays representable in two halves
        let n = self.fmax(self.fmin(n, self.f32c(254.0))?, self.f32c(-254.0))?;
        let ln2_hi = self.f32c(0.693_145_75);
        let ln2_lo = self.f32c(1.428_606_8e-6);
        let nneg = self.b.build_float_neg(n, "").map_err(|e| self.e(e))?;
        let r = self.fma(nneg, ln2_hi, x)?;
        let r = self.fma(nneg, ln2_lo, r)?;
        let er = self.exp2_approx(self.fmul(r, log2e)?)?;
        // 2^n = 2^(n/2) · 2^(n - n/2) with each half a normal float
        let ni = self
            .b
            .build_float_to_signed_int(n, self.cx.i32_type(), "")
            .map_err(|e| self.e(e))?;
        let h1 = self
            .b
            .build_right_shift(ni, self.i32c(1), true, "")
            .map_err(|e| self.e(e))?;
        let h2 = self.b.build_int_sub(ni, h1, "").map_err(|e| self.e(e))?;
        let p = |h: IntValue<'ctx>| -> R<FloatValue<'ctx>> {
            let biased = self
                .b
                .build_int_add(h, self.i32c(127), "")
                .map_err(|e| self.e(e))?;
            let bits = self
                .b
                .build_left_shift(biased, self.i32c(23), "")
                .map_err(|e| self.e(e))?;
            self.bits_f(bits)
        };
        let r = self.fmul(self.fmul(er, p(h1)?)?, p(h2)?)?;
        // NaN in → NaN out
        let nan = self.fcmp(FloatPredicate::UNO, x, x)?;
        self.fsel(nan, x, r)
    }

    /// `log₂ x` (`lg2.approx`; LLVM's `log2` in host mode).
    fn lg2(&self, x: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        if self.host {
            return self.fcall("llvm.log2.f32", &[x]);
        }
        self.fcall("llvm.nvvm.lg2.approx.f", &[x])
    }

    /// `ln x` (`lg2.approx` · ln 2; NaN / −inf / +inf as IEEE).
    pub fn log(&self, x: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        let l = self.lg2(x)?;
        self.fmul(l, self.f32c(std::f32::consts::LN_2))
    }

    /// `tanh x`: an odd Taylor polynomial for |x| < 0.55, `1 − 2/(e^{2|x|}+1)` above.
    pub fn tanh(&self, x: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        let ax = self.fabs(x)?;
        let x2 = self.fmul(x, x)?;
        // x·(1 − x²/3 + 2x⁴/15 − 17x⁶/315 + 62x⁸/2835 − 1382x¹⁰/155925)
        let coeffs = [
            -1382.0 / 155_925.0,
            62.0 / 2835.0,
            -17.0 / 315.0,
            2.0 / 15.0,
            -1.0 / 3.0,
            1.0,
        ];
        let mut p = self.f32c(coeffs[0] as f32);
        for &c in &coeffs[1..] {
            p = self.fma(p, x2, self.f32c(c as f32))?;
        }
        let small = self.fmul(p, x)?;
        let e = self.exp(self.fmul(ax, self.f32c(2.0))?)?;
        let big = self.fsub(
            self.f32c(1.0),
            self.fdiv(self.f32c(2.0), self.fadd(e, self.f32c(1.0))?)?,
        )?;
        let big = self.fcall("llvm.copysign.f32", &[big, x])?;
        let c = self.fcmp(FloatPredicate::OLT, ax, self.f32c(0.55))?;
        let r = self.fsel(c, small, big)?;
        let nan = self.fcmp(FloatPredicate::UNO, x, x)?;
        self.fsel(nan, x, r)
    }

    /// `erf x`: the Maclaurin series below 0.5, Abramowitz–Stegun 7.1.26 (absolute error
    /// ≤ 1.5e-7) above; odd.
    pub fn erf(&self, x: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        let ax = self.fabs(x)?;
        let t = self.fdiv(
            self.f32c(1.0),
            self.fma(self.f32c(0.327_591_1), ax, self.f32c(1.0))?,
        )?;
        let a = [
            1.061_405_4_f32,
            -1.453_152_1,
            1.421_413_8,
            -0.284_496_72,
            0.254_829_6,
        ];
        let mut p = self.f32c(a[0]);
        for &c in &a[1..] {
            p = self.fma(p, t, self.f32c(c))?;
        }
        p = self.fmul(p, t)?;
        let nx2 = self
            .b
            .build_float_neg(self.fmul(ax, ax)?, "")
            .map_err(|e| self.e(e))?;
        let y = self.fsub(self.f32c(1.0), self.fmul(p, self.exp(nx2)?)?)?;
        let big = self.fcall("llvm.copysign.f32", &[y, x])?;
        // |x| < 0.5: the Maclaurin series, relative error < 1e-7 (the formula above has a
        // fixed absolute error, too coarse for small values)
        let x2 = self.fmul(x, x)?;
        let series = [
            -1.0 / 1320.0,
            1.0 / 216.0,
            -1.0 / 42.0,
            1.0 / 10.0,
            -1.0 / 3.0,
            1.0,
        ];
        let mut q = self.f32c(series[0] as f32);
        for &c in &series[1..] {
            q = self.fma(q, x2, self.f32c(c as f32))?;
        }
        let small = self.fmul(
            self.fmul(q, x)?,
            self.f32c(std::f32::consts::FRAC_2_SQRT_PI),
        )?;
        let is_small = self.fcmp(FloatPredicate::OLT, ax, self.f32c(0.5))?;
        let r = self.fsel(is_small, small, big)?;
        let nan = self.fcmp(FloatPredicate::UNO, x, x)?;
        self.fsel(nan, x, r)
    }

    /// `1 / (1 + e^{−x})`.
    pub fn sigmoid(&self, x: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        let nx = self.b.build_float_neg(x, "").map_err(|e| self.e(e))?;
        let e = self.exp(nx)?;
        self.fdiv(self.f32c(1.0), self.fadd(self.f32c(1.0), e)?)
    }

    /// `sin` / `cos` after reduction to [−π, π] (`sin.approx` / `cos.approx`).
    pub fn sincos(&self, x: FloatValue<'ctx>, cos: bool) -> R<FloatValue<'ctx>> {
        let two_pi = std::f32::consts::TAU;
        let k = self.fcall("llvm.rint.f32", &[self.fmul(x, self.f32c(1.0 / two_pi))?])?;
        let nk = self.b.build_float_neg(k, "").map_err(|e| self.e(e))?;
        let r = self.fma(nk, self.f32c(6.283_185_5), x)?;
        let r = self.fma(nk, self.f32c(-1.748_455_5e-7), r)?;
        let name = match (cos, self.host) {
            (true, false) => "llvm.nvvm.cos.approx.f",
            (false, false) => "llvm.nvvm.sin.approx.f",
            (true, true) => "llvm.cos.f32",
            (false, true) => "llvm.sin.f32",
        };
        self.fcall(name, &[r])
    }

    /// `x^y` with C `powf` special cases for negative bases and zero.
    pub fn powf(&self, x: FloatValue<'ctx>, y: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        let ax = self.fabs(x)?;
        let l = self.lg2(ax)?;
        let ln = self.fmul(self.fmul(l, y)?, self.f32c(std::f32::consts::LN_2))?;
        let mag = self.exp(ln)?;
        // negative base: integer y keeps the sign of odd powers, other y gives NaN
        let yi = self.fcall("llvm.trunc.f32", &[y])?;
        let is_int = self.fcmp(FloatPredicate::OEQ, yi, y)?;
        let half = self.fmul(y, self.f32c(0.5))?;
        let half_t = self.fcall("llvm.trunc.f32", &[half])?;
        let odd = self.fcmp(FloatPredicate::ONE, half_t, half)?;
        let neg_mag = self.b.build_float_neg(mag, "").map_err(|e| self.e(e))?;
        let signed = self.fsel(odd, neg_mag, mag)?;
        let nanv = self.f32c(f32::NAN);
        let neg_r = self.fsel(is_int, signed, nanv)?;
        let xneg = self.fcmp(FloatPredicate::OLT, x, self.f32c(0.0))?;
        let r = self.fsel(xneg, neg_r, mag)?;
        // y == 0 → 1 (even for NaN x); x == 1 → 1
        let y0 = self.fcmp(FloatPredicate::OEQ, y, self.f32c(0.0))?;
        let x1 = self.fcmp(FloatPredicate::OEQ, x, self.f32c(1.0))?;
        let one = self.b.build_or(y0, x1, "").map_err(|e| self.e(e))?;
        self.fsel(one, self.f32c(1.0), r)
    }

    // ---- dtype value sets ------------------------------------------------------------------

    /// Round an f32 to `dt`'s value set (f16, bf16; f32 unchanged).
    pub fn round_to(&self, dt: DType, v: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        match dt {
            DType::F32 => Ok(v),
            DType::F16 => {
                let h = self
                    .b
                    .build_float_trunc(v, self.cx.f16_type(), "")
                    .map_err(|e| self.e(e))?;
                self.b
                    .build_float_ext(h, self.cx.f32_type(), "")
                    .map_err(|e| self.e(e))
            }
            DType::BF16 => {
                let h = self
                    .b
                    .build_float_trunc(v, self.cx.bf16_type(), "")
                    .map_err(|e| self.e(e))?;
                self.b
                    .build_float_ext(h, self.cx.f32_type(), "")
                    .map_err(|e| self.e(e))
            }
            DType::F8E4M3
            | DType::F8E5M2
            | DType::F8E4M3Fnuz
            | DType::F8E5M2Fnuz
            | DType::Fp4E2M1 => {
                let fmt = Mini::of(dt)
                    .ok_or_else(|| self.malformed(format!("{dt} is not a minifloat")))?;
                self.round_mini(v, fmt)
            }
            DType::I64 | DType::I32 | DType::I8 | DType::U8 | DType::I4 | DType::Bool => {
                Err(self.malformed(format!("float rounding to integer dtype {dt}")))
            }
        }
    }

    /// Wrap an i64 to `dt`'s width (bool: `!= 0`).
    pub fn wrap(&self, dt: DType, v: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        let narrow = |bits: u32, signed: bool| -> R<IntValue<'ctx>> {
            let t = std::num::NonZeroU32::new(bits)
                .and_then(|b| self.cx.custom_width_int_type(b).ok())
                .ok_or_else(|| self.malformed(format!("no {bits}-bit integer type")))?;
            let r = self.b.build_int_truncate(v, t, "").map_err(|e| self.e(e))?;
            if signed {
                self.b
                    .build_int_s_extend(r, self.cx.i64_type(), "")
                    .map_err(|e| self.e(e))
            } else {
                self.b
                    .build_int_z_extend(r, self.cx.i64_type(), "")
                    .map_err(|e| self.e(e))
            }
        };
        match dt {
            DType::I64 => Ok(v),
            DType::I32 => narrow(32, true),
            DType::I8 => narrow(8, true),
            DType::U8 => narrow(8, false),
            DType::I4 => narrow(4, true),
            DType::Bool => {
                let c = self.icmp(IntPredicate::NE, v, self.i64c(0))?;
                self.bool64(c)
            }
            DType::F32
            | DType::F16
            | DType::BF16
            | DType::F8E4M3
            | DType::F8E5M2
            | DType::F8E4M3Fnuz
            | DType::F8E5M2Fnuz
            | DType::Fp4E2M1 => Err(self.malformed(format!("integer wrap to float dtype {dt}"))),
        }
    }

    /// Bring a value into `dt`'s representation and value set.
    pub fn fix(&self, dt: DType, v: Val<'ctx>) -> R<Val<'ctx>> {
        if dt.is_float() {
            let f = self.as_f(v)?;
            Ok(Val::F(self.round_to(dt, f)?))
        } else {
            let i = self.as_i(v)?;
            Ok(Val::I(self.wrap(dt, i)?))
        }
    }

    // ---- loads and stores ----------------------------------------------------------------

    /// Decode an 8-bit minifloat code (as i32) with `mbits` mantissa bits and exponent
    /// `bias`; `fnuz`: 0x80 is the only NaN, no infinities; otherwise E4M3FN (`ieee` false:
    /// only S.1111.111 is NaN) or E5M2 (`ieee` true: all-ones exponent is inf/NaN).
    fn decode_f8(
        &self,
        code: IntValue<'ctx>,
        mbits: u32,
        bias: i32,
        fnuz: bool,
        ieee: bool,
    ) -> R<FloatValue<'ctx>> {
        let i32t = self.cx.i32_type();
        let c = |v: i32| i32t.const_int(v as u32 as u64, true);
        let ebits = 7 - mbits;
        let emax = (1 << ebits) - 1;
        let sign = self.b.build_and(code, c(0x80), "").map_err(|e| self.e(e))?;
        let e = self
            .b
            .build_right_shift(code, c(mbits as i32), false, "")
            .map_err(|e| self.e(e))?;
        let e = self.b.build_and(e, c(emax), "").map_err(|e| self.e(e))?;
        let m = self
            .b
            .build_and(code, c((1 << mbits) - 1), "")
            .map_err(|e| self.e(e))?;
        // value = (e == 0 ? m : m + 2^mbits) · 2^(max(e, 1) − bias − mbits)
        let is_sub = self
            .b
            .build_int_compare(IntPredicate::EQ, e, c(0), "")
            .map_err(|e| self.e(e))?;
        let implicit = self
            .b
            .build_int_add(m, c(1 << mbits), "")
            .map_err(|e| self.e(e))?;
        let sig = self.isel(is_sub, m, implicit)?;
        let e1 = self.isel(is_sub, c(1), e)?;
        let k = self
            .b
            .build_int_sub(e1, c(bias + mbits as i32), "")
            .map_err(|e| self.e(e))?;
        let biased = self.b.build_int_add(k, c(127), "").map_err(|e| self.e(e))?;
        let pbits = self
            .b
            .build_left_shift(biased, c(23), "")
            .map_err(|e| self.e(e))?;
        let pw = self.bits_f(pbits)?;
        let sigf = self
            .b
            .build_signed_int_to_float(sig, self.cx.f32_type(), "")
            .map_err(|e| self.e(e))?;
        let mag = self.fmul(sigf, pw)?;
        let neg = self
            .b
            .build_int_compare(IntPredicate::NE, sign, c(0), "")
            .map_err(|e| self.e(e))?;
        let nmag = self.b.build_float_neg(mag, "").map_err(|e| self.e(e))?;
        let mut v = self.fsel(neg, nmag, mag)?;
        let nan = self.f32c(f32::NAN);
        if fnuz {
            let isnan = self
                .b
                .build_int_compare(IntPredicate::EQ, code, c(0x80), "")
                .map_err(|e| self.e(e))?;
            v = self.fsel(isnan, nan, v)?;
        } else if ieee {
            let top = self
                .b
                .build_int_compare(IntPredicate::EQ, e, c(emax), "")
                .map_err(|e| self.e(e))?;
            let m0 = self
                .b
                .build_int_compare(IntPredicate::EQ, m, c(0), "")
                .map_err(|e| self.e(e))?;
            let inf = self.f32c(f32::INFINITY);
            let ninf = self.f32c(f32::NEG_INFINITY);
            let sinf = self.fsel(neg, ninf, inf)?;
            let special = self.fsel(m0, sinf, nan)?;
            v = self.fsel(top, special, v)?;
        } else {
            let low7 = self.b.build_and(code, c(0x7f), "").map_err(|e| self.e(e))?;
            let isnan = self
                .b
                .build_int_compare(IntPredicate::EQ, low7, c(0x7f), "")
                .map_err(|e| self.e(e))?;
            v = self.fsel(isnan, nan, v)?;
        }
        Ok(v)
    }

    /// Load element `idx` (i64) of argument `arg`.
    pub fn load(&self, arg: u32, idx: IntValue<'ctx>) -> R<Val<'ctx>> {
        let dt = self.arg_dtype(arg)?;
        let base = self.arg(arg)?;
        let ld =
            |ty: inkwell::types::BasicTypeEnum<'ctx>| -> R<inkwell::values::BasicValueEnum<'ctx>> {
                let p = self.elem_ptr(base, ty, idx)?;
                self.b.build_load(ty, p, "").map_err(|e| self.e(e))
            };
        let byte = |v: inkwell::values::BasicValueEnum<'ctx>| -> R<IntValue<'ctx>> {
            self.b
                .build_int_z_extend(v.into_int_value(), self.cx.i32_type(), "")
                .map_err(|e| self.e(e))
        };
        match dt {
            DType::F32 => Ok(Val::F(ld(self.cx.f32_type().into())?.into_float_value())),
            DType::F16 => {
                let h = ld(self.cx.f16_type().into())?.into_float_value();
                Ok(Val::F(
                    self.b
                        .build_float_ext(h, self.cx.f32_type(), "")
                        .map_err(|e| self.e(e))?,
                ))
            }
            DType::BF16 => {
                let h = ld(self.cx.bf16_type().into())?.into_float_value();
                Ok(Val::F(
                    self.b
                        .build_float_ext(h, self.cx.f32_type(), "")
                        .map_err(|e| self.e(e))?,
                ))
            }
            DType::F8E4M3 => Ok(Val::F(self.decode_f8(
                byte(ld(self.cx.i8_type().into())?)?,
                3,
                7,
                false,
                false,
            )?)),
            DType::F8E5M2 => Ok(Val::F(self.decode_f8(
                byte(ld(self.cx.i8_type().into())?)?,
                2,
                15,
                false,
                true,
            )?)),
            DType::F8E4M3Fnuz => Ok(Val::F(self.decode_f8(
                byte(ld(self.cx.i8_type().into())?)?,
                3,
                8,
                true,
                false,
            )?)),
            DType::F8E5M2Fnuz => Ok(Val::F(self.decode_f8(
                byte(ld(self.cx.i8_type().into())?)?,
                2,
                16,
                true,
                false,
            )?)),
            DType::I64 => Ok(Val::I(ld(self.cx.i64_type().into())?.into_int_value())),
            DType::I32 | DType::I8 => {
                let t = if dt == DType::I32 {
                    self.cx.i32_type()
                } else {
                    self.cx.i8_type()
                };
                let v = ld(t.into())?.into_int_value();
                Ok(Val::I(
                    self.b
                        .build_int_s_extend(v, self.cx.i64_type(), "")
                        .map_err(|e| self.e(e))?,
                ))
            }
            DType::U8 | DType::Bool => {
                let v = ld(self.cx.i8_type().into())?.into_int_value();
                let v = self.zext64(v)?;
                if dt == DType::Bool {
                    let c = self.icmp(IntPredicate::NE, v, self.i64c(0))?;
                    return Ok(Val::I(self.bool64(c)?));
                }
                Ok(Val::I(v))
            }
            DType::I4 | DType::Fp4E2M1 => {
                // two per byte, the even element in the low nibble
                let bi = self
                    .b
                    .build_right_shift(idx, self.i64c(1), false, "")
                    .map_err(|e| self.e(e))?;
                let p = self.elem_ptr(base, self.cx.i8_type(), bi)?;
                let byte = self
                    .b
                    .build_load(self.cx.i8_type(), p, "")
                    .map_err(|e| self.e(e))?
                    .into_int_value();
                let byte = self.zext64(byte)?;
                let odd = self
                    .b
                    .build_and(idx, self.i64c(1), "")
                    .map_err(|e| self.e(e))?;
                let sh = self.mul(odd, self.i64c(4))?;
                let nib = self
                    .b
                    .build_right_shift(byte, sh, false, "")
                    .map_err(|e| self.e(e))?;
                let nib = self
                    .b
                    .build_and(nib, self.i64c(15), "")
                    .map_err(|e| self.e(e))?;
                if dt == DType::I4 {
                    return Ok(Val::I(self.wrap(DType::I4, nib)?));
                }
                // e2m1: s.ee.m; e == 0: m·0.5, else (1 + m/2)·2^(e−1)
                let n32 = self.trunc32(nib)?;
                let code8 = n32;
                let sign = self
                    .b
                    .build_and(code8, self.i32c(8), "")
                    .map_err(|e| self.e(e))?;
                let mag_code = self
                    .b
                    .build_and(code8, self.i32c(7), "")
                    .map_err(|e| self.e(e))?;
                let e = self
                    .b
                    .build_right_shift(mag_code, self.i32c(1), false, "")
                    .map_err(|e| self.e(e))?;
                let m = self
                    .b
                    .build_and(mag_code, self.i32c(1), "")
                    .map_err(|e| self.e(e))?;
                let is_sub = self.icmp32_eq(e, 0)?;
                let sig = self.isel(
                    is_sub,
                    m,
                    self.b
                        .build_int_add(m, self.i32c(2), "")
                        .map_err(|e| self.e(e))?,
                )?;
                let e1 = self.isel(is_sub, self.i32c(1), e)?;
                // value = sig · 2^(e1 − 2)
                let biased = self
                    .b
                    .build_int_add(e1, self.i32c(125), "")
                    .map_err(|e| self.e(e))?;
                let pw = self.bits_f(
                    self.b
                        .build_left_shift(biased, self.i32c(23), "")
                        .map_err(|e| self.e(e))?,
                )?;
                let sigf = self
                    .b
                    .build_signed_int_to_float(sig, self.cx.f32_type(), "")
                    .map_err(|e| self.e(e))?;
                let mag = self.fmul(sigf, pw)?;
                let neg = self
                    .b
                    .build_int_compare(IntPredicate::NE, sign, self.i32c(0), "")
                    .map_err(|e| self.e(e))?;
                let nmag = self.b.build_float_neg(mag, "").map_err(|e| self.e(e))?;
                Ok(Val::F(self.fsel(neg, nmag, mag)?))
            }
        }
    }

    fn icmp32_eq(&self, a: IntValue<'ctx>, v: i32) -> R<IntValue<'ctx>> {
        self.b
            .build_int_compare(IntPredicate::EQ, a, self.i32c(v), "")
            .map_err(|e| self.e(e))
    }

    /// Store `v` (already in `dt`'s value set) as element `idx` of argument `arg`.
    pub fn store(&self, arg: u32, idx: IntValue<'ctx>, v: Val<'ctx>) -> R<()> {
        let dt = self.arg_dtype(arg)?;
        let base = self.arg(arg)?;
        let st = |ty: inkwell::types::BasicTypeEnum<'ctx>,
                  val: inkwell::values::BasicValueEnum<'ctx>|
         -> R<()> {
            let p = self.elem_ptr(base, ty, idx)?;
            self.b
                .build_store(p, val)
                .map(|_| ())
                .map_err(|e| self.e(e))
        };
        match dt {
            DType::F32 => st(self.cx.f32_type().into(), self.as_f(v)?.into()),
            DType::F16 => {
                let h = self
                    .b
                    .build_float_trunc(self.as_f(v)?, self.cx.f16_type(), "")
                    .map_err(|e| self.e(e))?;
                st(self.cx.f16_type().into(), h.into())
            }
            DType::BF16 => {
                let h = self
                    .b
                    .build_float_trunc(self.as_f(v)?, self.cx.bf16_type(), "")
                    .map_err(|e| self.e(e))?;
                st(self.cx.bf16_type().into(), h.into())
            }
            DType::I64 => st(self.cx.i64_type().into(), self.as_i(v)?.into()),
            DType::I32 | DType::I8 | DType::U8 | DType::Bool => {
                let t = if dt == DType::I32 {
                    self.cx.i32_type()
                } else {
                    self.cx.i8_type()
                };
                let i = self
                    .b
                    .build_int_truncate(self.as_i(v)?, t, "")
                    .map_err(|e| self.e(e))?;
                st(t.into(), i.into())
            }
            DType::F8E4M3 | DType::F8E5M2 | DType::F8E4M3Fnuz | DType::F8E5M2Fnuz => {
                let fmt = Mini::of(dt)
                    .ok_or_else(|| self.malformed(format!("{dt} is not a minifloat")))?;
                let r = self.round_mini(self.as_f(v)?, fmt)?;
                let code = self.encode_mini(r, fmt)?;
                let b = self
                    .b
                    .build_int_truncate(code, self.cx.i8_type(), "")
                    .map_err(|e| self.e(e))?;
                st(self.cx.i8_type().into(), b.into())
            }
            DType::Fp4E2M1 | DType::I4 => {
                let code = if dt == DType::I4 {
                    let i = self.as_i(v)?;
                    self.b
                        .build_int_truncate(i, self.cx.i32_type(), "")
                        .map_err(|e| self.e(e))?
                } else {
                    let fmt = Mini::of(dt)
                        .ok_or_else(|| self.malformed(format!("{dt} is not a minifloat")))?;
                    let r = self.round_mini(self.as_f(v)?, fmt)?;
                    self.encode_mini(r, fmt)?
                };
                self.store_nibble(base, idx, code)
            }
        }
    }

    /// Store the low 4 bits of `code` (i32) as nibble `idx` of a packed buffer (the even
    /// element in the low nibble). Neighbouring nibbles may be written by other threads at
    /// the same time, so the containing 32-bit word is updated with two atomics on disjoint
    /// bits: an AND that clears this nibble and an OR that sets it. Buffers are at least
    /// 4-byte aligned (arena offsets and allocations are 64-byte aligned).
    fn store_nibble(
        &self,
        base: inkwell::values::PointerValue<'ctx>,
        idx: IntValue<'ctx>,
        code: IntValue<'ctx>,
    ) -> R<()> {
        let i32t = self.cx.i32_type();
        let word = self
            .b
            .build_right_shift(idx, self.i64c(3), false, "")
            .map_err(|e| self.e(e))?;
        let within = self
            .b
            .build_and(idx, self.i64c(7), "")
            .map_err(|e| self.e(e))?;
        let shift = self.trunc32(self.mul(within, self.i64c(4))?)?;
        let nib = self
            .b
            .build_and(code, self.i32c(15), "")
            .map_err(|e| self.e(e))?;
        let set = self
            .b
            .build_left_shift(nib, shift, "")
            .map_err(|e| self.e(e))?;
        let mask = self
            .b
            .build_left_shift(self.i32c(15), shift, "")
            .map_err(|e| self.e(e))?;
        let clear = self.b.build_not(mask, "").map_err(|e| self.e(e))?;
        let p = self.elem_ptr(base, i32t, word)?;
        self.b
            .build_atomicrmw(
                inkwell::AtomicRMWBinOp::And,
                p,
                clear,
                inkwell::AtomicOrdering::Monotonic,
            )
            .map_err(|e| self.e(e))?;
        self.b
            .build_atomicrmw(
                inkwell::AtomicRMWBinOp::Or,
                p,
                set,
                inkwell::AtomicOrdering::Monotonic,
            )
            .map_err(|e| self.e(e))?;
        Ok(())
    }

    /// `⌊log₂ a⌋` of a non-negative f32 from its exponent bits (−127 for 0 and subnormals),
    /// as i32.
    fn floor_log2(&self, a: FloatValue<'ctx>) -> R<IntValue<'ctx>> {
        let bits = self
            .b
            .build_bit_cast(a, self.cx.i32_type(), "")
            .map_err(|e| self.e(e))?
            .into_int_value();
        let e = self
            .b
            .build_right_shift(bits, self.i32c(23), false, "")
            .map_err(|e| self.e(e))?;
        let e = self
            .b
            .build_and(e, self.i32c(0xff), "")
            .map_err(|e| self.e(e))?;
        self.b
            .build_int_sub(e, self.i32c(127), "")
            .map_err(|e| self.e(e))
    }

    /// `2^k` for an i32 `k` in the normal f32 range.
    fn pow2i(&self, k: IntValue<'ctx>) -> R<FloatValue<'ctx>> {
        let biased = self
            .b
            .build_int_add(k, self.i32c(127), "")
            .map_err(|e| self.e(e))?;
        let bits = self
            .b
            .build_left_shift(biased, self.i32c(23), "")
            .map_err(|e| self.e(e))?;
        self.bits_f(bits)
    }

    /// The exponent the quantum of `a` is based on: `clamp(⌊log₂ a⌋, 1 − bias, emax)`.
    fn mini_exp(&self, a: FloatValue<'ctx>, fmt: Mini) -> R<IntValue<'ctx>> {
        let e = self.floor_log2(a)?;
        let lo = self.i32c(1 - fmt.bias);
        let hi = self.i32c(fmt.emax);
        let c = self
            .b
            .build_int_compare(IntPredicate::SLT, e, lo, "")
            .map_err(|e| self.e(e))?;
        let e = self.isel(c, lo, e)?;
        let c = self
            .b
            .build_int_compare(IntPredicate::SGT, e, hi, "")
            .map_err(|e| self.e(e))?;
        self.isel(c, hi, e)
    }

    /// Round an f32 to a minifloat's value set: nearest, ties to even, saturating to ±max
    /// (infinities too); NaN stays NaN (formats without NaN give 0); FNUZ formats have no
    /// −0. The same results as `MiniFloat::encode(x, true)` decoded.
    fn round_mini(&self, x: FloatValue<'ctx>, fmt: Mini) -> R<FloatValue<'ctx>> {
        let a = self.fabs(x)?;
        let e = self.mini_exp(a, fmt)?;
        let qexp = self
            .b
            .build_int_sub(e, self.i32c(fmt.mbits as i32), "")
            .map_err(|e| self.e(e))?;
        let q = self.pow2i(qexp)?;
        let n = self.fcall("llvm.rint.f32", &[self.fdiv(a, q)?])?;
        let r = self.fmin(self.fmul(n, q)?, self.f32c(fmt.max))?;
        let r = if fmt.fnuz {
            r
        } else {
            self.fcall("llvm.copysign.f32", &[r, x])?
        };
        let r = if fmt.fnuz {
            // sign only on non-zero values
            let neg = self.fcmp(FloatPredicate::OLT, x, self.f32c(0.0))?;
            let nz = self.fcmp(FloatPredicate::ONE, r, self.f32c(0.0))?;
            let both = self.b.build_and(neg, nz, "").map_err(|e| self.e(e))?;
            let nr = self.b.build_float_neg(r, "").map_err(|e| self.e(e))?;
            self.fsel(both, nr, r)?
        } else {
            r
        };
        let nan = self.fcmp(FloatPredicate::UNO, x, x)?;
        let nanv = if fmt.has_nan { x } else { self.f32c(0.0) };
        self.fsel(nan, nanv, r)
    }

    /// The code (i32) of a value already in a minifloat's value set.
    fn encode_mini(&self, v: FloatValue<'ctx>, fmt: Mini) -> R<IntValue<'ctx>> {
        let a = self.fabs(v)?;
        let e = self.mini_exp(a, fmt)?;
        let min_normal = self.f32c((2.0f32).powi(1 - fmt.bias));
        let sub = self.fcmp(FloatPredicate::OLT, a, min_normal)?;
        // subnormal: man = a / 2^(1 − bias − mbits); normal: man = a / 2^(e − mbits) − 2^mbits
        let qexp = self
            .b
            .build_int_sub(e, self.i32c(fmt.mbits as i32), "")
            .map_err(|e| self.e(e))?;
        let scaled = self.fdiv(a, self.pow2i(qexp)?)?;
        let si = self
            .b
            .build_float_to_unsigned_int(scaled, self.cx.i32_type(), "")
            .map_err(|e| self.e(e))?;
        let man_norm = self
            .b
            .build_int_sub(si, self.i32c(1 << fmt.mbits), "")
            .map_err(|e| self.e(e))?;
        let man = self.isel(sub, si, man_norm)?;
        let ebias = self
            .b
            .build_int_add(e, self.i32c(fmt.bias), "")
            .map_err(|e| self.e(e))?;
        let efield = self.isel(sub, self.i32c(0), ebias)?;
        let efield = self
            .b
            .build_left_shift(efield, self.i32c(fmt.mbits as i32), "")
            .map_err(|e| self.e(e))?;
        let mag = self.b.build_or(efield, man, "").map_err(|e| self.e(e))?;
        let sign_bit = self.i32c(1 << (fmt.width - 1));
        let neg = self.fcmp(FloatPredicate::OLT, v, self.f32c(0.0))?;
        let negzero = {
            let bits = self
                .b
                .build_bit_cast(v, self.cx.i32_type(), "")
                .map_err(|e| self.e(e))?
                .into_int_value();
            self.b
                .build_int_compare(IntPredicate::SLT, bits, self.i32c(0), "")
                .map_err(|e| self.e(e))?
        };
        let signed = if fmt.fnuz {
            neg
        } else {
            self.b.build_or(neg, negzero, "").map_err(|e| self.e(e))?
        };
        let with_sign = self.b.build_or(mag, sign_bit, "").map_err(|e| self.e(e))?;
        let code = self.isel(signed, with_sign, mag)?;
        let nan = self.fcmp(FloatPredicate::UNO, v, v)?;
        self.isel(nan, self.i32c(fmt.nan_code), code)
    }

    /// A pointer into shared memory: the dynamic shared array of the kernel (declared once).
    pub fn dyn_shared(&self) -> R<inkwell::values::PointerValue<'ctx>> {
        let name = "dqc_dyn_smem";
        let g = match self.m.get_global(name) {
            Some(g) => g,
            None => {
                let ty = self.cx.i8_type().array_type(0);
                let g =
                    self.m
                        .add_global(ty, Some(AddressSpace::from(super::builder::SHARED)), name);
                g.set_linkage(inkwell::module::Linkage::External);
                g.set_alignment(16);
                g
            }
        };
        Ok(g.as_pointer_value())
    }
}

/// Parameters of a small float format, as the generated rounding and encoding use them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mini {
    /// Mantissa bits.
    pub mbits: u32,
    /// Exponent bias.
    pub bias: i32,
    /// Largest exponent of a finite value.
    pub emax: i32,
    /// Largest finite value.
    pub max: f32,
    /// The format has a NaN.
    pub has_nan: bool,
    /// FNUZ: no −0, 0x80 is NaN.
    pub fnuz: bool,
    /// Code of NaN.
    pub nan_code: i32,
    /// Total bits.
    pub width: u32,
}

impl Mini {
    /// The format of a minifloat dtype.
    pub fn of(dt: DType) -> Option<Mini> {
        Some(match dt {
            DType::F8E4M3 => Mini {
                mbits: 3,
                bias: 7,
                emax: 8,
                max: 448.0,
                has_nan: true,
                fnuz: false,
                nan_code: 0x7f,
                width: 8,
            },
            DType::F8E5M2 => Mini {
                mbits: 2,
                bias: 15,
                emax: 15,
                max: 57344.0,
                has_nan: true,
                fnuz: false,
                nan_code: 0x7f,
                width: 8,
            },
            DType::F8E4M3Fnuz => Mini {
                mbits: 3,
                bias: 8,
                emax: 7,
                max: 240.0,
                has_nan: true,
                fnuz: true,
                nan_code: 0x80,
                width: 8,
            },
            DType::F8E5M2Fnuz => Mini {
                mbits: 2,
                bias: 16,
                emax: 15,
                max: 57344.0,
                has_nan: true,
                fnuz: true,
                nan_code: 0x80,
                width: 8,
            },
            DType::Fp4E2M1 => Mini {
                mbits: 1,
                bias: 1,
                emax: 2,
                max: 6.0,
                has_nan: false,
                fnuz: false,
                nan_code: 0,
                width: 4,
            },
            _ => return None,
        })
    }
}
