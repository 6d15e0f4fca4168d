//! `QMatMul`: each quantized operand is dequantized by an elementwise kernel into an f32
//! temporary (an activation buffer of the operand's shape, with the values `Dequantize`
//! to f32 gives, see [`super::quant`]), then one f32 GEMM multiplies the temporaries (a
//! float `a` that is already an f32 view is read in place; another float `a` is converted
//! into a temporary too). The GEMM accumulates in f32 where the interpreter uses f64: the
//! results agree to f32 rounding of the sums, as for `MatMul`.

use super::emit::KCtx;
use super::kernels::MatSrc;
use super::view::{View, identity};
use super::{LowerError, Lowerer};
use crate::spec::{BufferId, BufferKind, Elementwise, Expr, Kernel, KernelSpec};
use dqc_ir::graph::Value;
use dqc_ir::op::dequant_extra_inputs;
use dqc_ir::{DType, NodeId, Op, QuantScheme, TensorType};

impl Lowerer<'_> {
    /// The kernels of `QMatMul` node `h` (result or fused `root` into `b`).
    pub(crate) fn qmatmul(
        &mut self,
        h: NodeId,
        root: Option<Value>,
        b: BufferId,
    ) -> Result<(), LowerError> {
        let Op::QMatMul {
            a_scheme, b_scheme, ..
        } = self.g.node(h).op.clone()
        else {
            return Err(self.malformed(h, "not a qmatmul"));
        };
        let inputs = self.g.node(h).inputs().to_vec();
        let a_n = 1 + a_scheme.as_ref().map_or(0, dequant_extra_inputs);
        if inputs.len() != a_n + 1 + dequant_extra_inputs(&b_scheme) {
            return Err(self.malformed(h, "qmatmul operand count"));
        }
        let (a_in, b_in) = inputs.split_at(a_n);
        let a_src = match (&a_scheme, a_in.first()) {
            (None, Some(&a)) => {
                let in_place = self.ty(a)?.dtype == DType::F32 && self.view_of(a)?.is_some();
                if in_place {
                    self.mat_src(a)?
                } else {
                    self.f32_temp(h, a_in, None, "a")?
                }
            }
            (Some(s), _) => self.f32_temp(h, a_in, Some(s), "a")?,
            (None, None) => return Err(self.malformed(h, "qmatmul without operands")),
        };
        let b_src = self.f32_temp(h, b_in, Some(&b_scheme), "b")?;
        self.matmul_of(h, root, b, [a_src, b_src], 1.0, false, false, None)
    }

    /// An elementwise kernel writing operand `inputs[0]` as f32 (dequantized under
    /// `scheme` with the scales `inputs[1..]`, or converted) into a new activation.
    fn f32_temp(
        &mut self,
        h: NodeId,
        inputs: &[Value],
        scheme: Option<&QuantScheme>,
        what: &str,
    ) -> Result<MatSrc, LowerError> {
        let (&q, extra) = inputs
            .split_first()
            .ok_or_else(|| self.malformed(h, format!("qmatmul {what} missing")))?;
        let ty = self.ty(q)?.clone();
        let shape = ty.shape.clone();
        let name = format!("{}.{what}_f32", self.name(h));
        let buf = self.add_buffer(
            &name,
            &TensorType::new(DType::F32, shape.clone()),
            BufferKind::Activation { offset: 0 },
        );
        let mut k = KCtx::new(shape.rank());
        let id = identity(shape.rank());
        let e = match scheme {
            Some(s) => self.dequant_f32(&mut k, h, q, extra, s, false, &id)?,
            None => {
                let e = self.emit(&mut k, q, &id)?;
                if ty.dtype == DType::F32 {
                    e
                } else {
                    k.push(DType::F32, Expr::Cast { x: e })
                }
            }
        };
        let out = k.arg(buf);
        self.push_kernel(KernelSpec {
            name: name.clone(),
            args: k.args,
            writes: vec![out],
            body: Kernel::Elementwise(Elementwise {
                shape: shape.clone(),
                exprs: k.exprs,
                outputs: vec![(out, e)],
            }),
        });
        let view = View::dense(&shape).ok_or_else(|| self.malformed(h, "shape overflows"))?;
        Ok(MatSrc {
            buf,
            view,
            shape,
            dtype: DType::F32,
        })
    }
}
