//! Quantize and dequantize as expression nodes, bit-exact with the interpreter
//! (`ir::interp::quant`).
//!
//! - The scale (and zero point) governing an element is read per scheme: per tensor at
//!   no coordinate, per channel at the channel coordinate, and for the block schemes
//!   (`PerGroup`, `Nvfp4`, `Mx`) through a table mapping the coordinate along the axis to
//!   its block (`c / size`; a ragged last block included), see [`super::indexed`].
//! - Dequantize: affine `(q − zp)·scale`, NVFP4 `q·block_scale·tensor_scale`, MX
//!   `value(q)·2^E` (E8M0 decoded through a 256-entry table, NaN for `0xff`; MXINT8
//!   codes are `q/64`). Every product in f32 is exact up to its single final rounding, so
//!   it equals the interpreter's f64 product rounded once.
//! - Quantize (affine schemes): `q = sat(rne(x / scale) + zp)` for integer codes
//!   (NaN → zp), `q = encode(x / scale)` for float codes, the quotient in f32. NVFP4 and
//!   MX quantization need a block absmax (a reduction): they are kernels of their own, see
//!   `block_quant.rs`.

use super::emit::KCtx;
use super::indexed::Remap;
use super::view::CMap;
use super::{LowerError, Lowerer};
use crate::spec::{Expr, ExprId, Scalar};
use dqc_ir::graph::Value;
use dqc_ir::numeric::e8m0_to_f32;
use dqc_ir::op::{BinaryOp, UnaryOp};
use dqc_ir::{DType, NodeId, Op, QuantScheme, Shape};

/// `x` as f32 (a cast unless it already is).
fn as_f32(k: &mut KCtx, x: ExprId, from: DType) -> ExprId {
    if from == DType::F32 {
        x
    } else {
        k.push(DType::F32, Expr::Cast { x })
    }
}

/// `a op b` in f32.
fn f32_bin(k: &mut KCtx, op: BinaryOp, a: ExprId, b: ExprId) -> ExprId {
    k.push(DType::F32, Expr::Binary { op, a, b })
}

/// Block index of each coordinate `0..extent` for blocks of `size` elements.
pub(crate) fn block_table(extent: u64, size: u64) -> Vec<i64> {
    (0..extent).map(|c| (c / size.max(1)) as i64).collect()
}

impl Lowerer<'_> {
    /// The scale-shaped operand `s` (scale or zero point) governing the element at `cm` of
    /// a tensor of shape `shape` quantized under `scheme`, in `s`'s dtype.
    pub(crate) fn scale_read(
        &mut self,
        k: &mut KCtx,
        n: NodeId,
        s: Value,
        scheme: &QuantScheme,
        shape: &Shape,
        cm: &CMap,
    ) -> Result<ExprId, LowerError> {
        let axis = match scheme.axis() {
            None => return self.emit(k, s, &vec![]),
            Some(axis) => shape
                .axis(axis)
                .ok_or_else(|| self.malformed(n, format!("{scheme}: axis out of range")))?,
        };
        let coord = cm
            .get(axis)
            .cloned()
            .ok_or_else(|| self.malformed(n, format!("{scheme}: axis out of range")))?;
        let Some(size) = scheme.block_size() else {
            return self.emit(k, s, &vec![coord]);
        };
        if size == 0 {
            return Err(self.malformed(n, format!("{scheme}: block size 0")));
        }
        let extent = shape.dims()[axis].as_fixed().ok_or_else(|| {
            self.unsupported(n, format!("{scheme} along an axis of symbolic extent"))
        })?;
        let remap = Remap {
            axis,
            coord,
            table: block_table(extent, size),
        };
        self.remapped_read(k, n, s, cm, &[remap])
    }

    /// The f32 value of dequantizing `q` (inputs `extra` in `Dequantize`'s order after
    /// `q`: scale(s), then the zero point if `has_zp`) at `cm`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn dequant_f32(
        &mut self,
        k: &mut KCtx,
        n: NodeId,
        q: Value,
        extra: &[Value],
        scheme: &QuantScheme,
        has_zp: bool,
        cm: &CMap,
    ) -> Result<ExprId, LowerError> {
        let qd = self.ty(q)?.dtype;
        let shape = self.shape(q)?;
        let need = 1 + dqc_ir::op::dequant_extra_inputs(scheme) + usize::from(has_zp);
        if extra.len() + 1 != need {
            return Err(self.malformed(
                n,
                format!(
                    "dequantize ({scheme}) takes {need} operands, got {}",
                    extra.len() + 1
                ),
            ));
        }
        let operand = |i: usize| extra[i];
        let qe = self.emit(k, q, cm)?;
        let mut x = as_f32(k, qe, qd);
        match scheme {
            QuantScheme::PerTensor
            | QuantScheme::PerChannel { .. }
            | QuantScheme::PerGroup { .. } => {
                if has_zp {
                    let z = operand(1);
                    let ze = self.scale_read(k, n, z, scheme, &shape, cm)?;
                    let zf = k.push(DType::F32, Expr::Cast { x: ze });
                    x = f32_bin(k, BinaryOp::Sub, x, zf);
                }
                let sc = operand(0);
                let sd = self.ty(sc)?.dtype;
                let se = self.scale_read(k, n, sc, scheme, &shape, cm)?;
                let sf = as_f32(k, se, sd);
                Ok(f32_bin(k, BinaryOp::Mul, x, sf))
            }
            QuantScheme::Nvfp4 { .. } => {
                let bs = operand(0);
                let bd = self.ty(bs)?.dtype;
                let be = self.scale_read(k, n, bs, scheme, &shape, cm)?;
                let bf = as_f32(k, be, bd);
                let ts = operand(1);
                let td = self.ty(ts)?.dtype;
                let te = self.emit(k, ts, &vec![])?;
                let tf = as_f32(k, te, td);
                let p = f32_bin(k, BinaryOp::Mul, x, bf);
                Ok(f32_bin(k, BinaryOp::Mul, p, tf))
            }
            QuantScheme::Mx { .. } => {
                if qd == DType::I8 {
                    let unit = k.push(DType::F32, Expr::Const(Scalar::F(1.0 / 64.0)));
                    x = f32_bin(k, BinaryOp::Mul, x, unit);
                }
                let sc = operand(0);
                let code = self.scale_read(k, n, sc, scheme, &shape, cm)?;
                let code = k.push(DType::I64, Expr::Cast { x: code });
                let values: Vec<f32> = (0..=255u8).map(e8m0_to_f32).collect();
                let e = self.lookup_f32(k, n, "e8m0_values", &values, code)?;
                Ok(f32_bin(k, BinaryOp::Mul, x, e))
            }
        }
    }

    /// A `Dequantize` node's value at `cm`.
    pub(crate) fn emit_dequantize(
        &mut self,
        k: &mut KCtx,
        n: NodeId,
        cm: &CMap,
    ) -> Result<ExprId, LowerError> {
        let Op::Dequantize {
            scheme,
            has_zero_point,
            out,
        } = self.g.node(n).op.clone()
        else {
            return Err(self.malformed(n, "not a dequantize"));
        };
        let inputs = self.g.node(n).inputs().to_vec();
        let (q, extra) = inputs
            .split_first()
            .ok_or_else(|| self.malformed(n, "dequantize without operands"))?;
        let y = self.dequant_f32(k, n, *q, extra, &scheme, has_zero_point, cm)?;
        Ok(if out == DType::F32 {
            y
        } else {
            k.push(out, Expr::Cast { x: y })
        })
    }

    /// A `Quantize` node's (affine) code at `cm`.
    pub(crate) fn emit_quantize(
        &mut self,
        k: &mut KCtx,
        n: NodeId,
        cm: &CMap,
    ) -> Result<ExprId, LowerError> {
        let Op::Quantize {
            dtype: qd,
            scheme,
            has_zero_point,
        } = self.g.node(n).op.clone()
        else {
            return Err(self.malformed(n, "not a quantize"));
        };
        if let QuantScheme::Nvfp4 { .. } | QuantScheme::Mx { .. } = scheme {
            return Err(self.malformed(
                n,
                format!("quantize ({scheme}) is a kernel of its own, not an expression"),
            ));
        }
        let x = self.input(n, 0)?;
        let xd = self.ty(x)?.dtype;
        let shape = self.shape(x)?;
        let xe = self.emit(k, x, cm)?;
        let xf = as_f32(k, xe, xd);
        let sc = self.input(n, 1)?;
        let sd = self.ty(sc)?.dtype;
        let se = self.scale_read(k, n, sc, &scheme, &shape, cm)?;
        let sf = as_f32(k, se, sd);
        let q = f32_bin(k, BinaryOp::Div, xf, sf);
        if qd.is_float() {
            return Ok(k.push(qd, Expr::Cast { x: q }));
        }
        let r = k.push(
            DType::F32,
            Expr::Unary {
                op: UnaryOp::Round,
                x: q,
            },
        );
        let not_nan = k.push(
            DType::Bool,
            Expr::Binary {
                op: BinaryOp::Equal,
                a: r,
                b: r,
            },
        );
        let zero = k.push(DType::F32, Expr::Const(Scalar::F(0.0)));
        let mut r = k.push(
            DType::F32,
            Expr::Select {
                cond: not_nan,
                a: r,
                b: zero,
            },
        );
        if has_zero_point {
            let z = self.input(n, 2)?;
            let ze = self.scale_read(k, n, z, &scheme, &shape, cm)?;
            let zf = k.push(DType::F32, Expr::Cast { x: ze });
            r = f32_bin(k, BinaryOp::Add, r, zf);
        }
        // the cast saturates to the code range
        Ok(k.push(qd, Expr::Cast { x: r }))
    }
}
