//! Fused elementwise kernels: a grid-stride loop over the elements of the iteration space;
//! each thread unravels its linear index into coordinates, evaluates the arena and stores
//! every output densely.
//!
//! Index arithmetic is 32-bit when the space has fewer than 2^31 elements (the common case:
//! integer division is several times cheaper), 64-bit otherwise; the choice is made at run
//! time from the symbol parameters.

use crate::ptx::builder::{Kb, R};
use crate::ptx::expr::At;
use crate::spec::Elementwise;
use inkwell::IntPredicate;
use inkwell::values::IntValue;

/// Unravel a linear i64 index into coordinates over `dims` (i64 values), row-major.
pub(crate) fn unravel<'ctx>(
    kb: &Kb<'ctx, '_>,
    mut lin: IntValue<'ctx>,
    dims: &[IntValue<'ctx>],
) -> R<Vec<IntValue<'ctx>>> {
    let mut coords = vec![kb.i64c(0); dims.len()];
    for d in (0..dims.len()).rev() {
        if d == 0 {
            coords[0] = lin;
            break;
        }
        coords[d] = kb.urem(lin, dims[d])?;
        lin = kb.udiv(lin, dims[d])?;
    }
    Ok(coords)
}

/// Generate an elementwise kernel.
pub(crate) fn generate(kb: &mut Kb<'_, '_>, e: &Elementwise) -> R<()> {
    if e.outputs.is_empty() {
        return Err(kb.malformed("elementwise kernel without outputs"));
    }
    let dims: Vec<IntValue> = e.shape.dims().iter().map(|d| kb.dim(d)).collect::<R<_>>()?;
    let mut n = kb.i64c(1);
    for &d in &dims {
        n = kb.mul(n, d)?;
    }
    let (start, step) = if kb.host {
        // host checks run the whole space in one sequential loop
        (kb.i64c(0), kb.i64c(1))
    } else {
        let tid = kb.sreg64("tid.x")?;
        let ctaid = kb.sreg64("ctaid.x")?;
        let ntid = kb.sreg64("ntid.x")?;
        let nctaid = kb.sreg64("nctaid.x")?;
        (kb.add(kb.mul(ctaid, ntid)?, tid)?, kb.mul(nctaid, ntid)?)
    };
    let small = kb.icmp(IntPredicate::SLT, n, kb.i64c(i32::MAX as i64))?;
    let fast = kb.block("narrow_index");
    let slow = kb.block("wide_index");
    let done = kb.block("done");
    kb.cond_br(small, fast, slow)?;
    for (block, narrow) in [(fast, true), (slow, false)] {
        kb.b.position_at_end(block);
        kb.for_loop(start, n, step, |kb, i| {
            let coords = if narrow {
                // 32-bit unravel, widened back
                let i32t = kb.cx.i32_type();
                let mut lin = kb.trunc32(i)?;
                let mut cs = Vec::with_capacity(dims.len());
                for d in (0..dims.len()).rev() {
                    if d == 0 {
                        cs.push(kb.zext64(lin)?);
                        break;
                    }
                    let dd =
                        kb.b.build_int_truncate(dims[d], i32t, "")
                            .map_err(|e| kb.e(e))?;
                    let c =
                        kb.b.build_int_unsigned_rem(lin, dd, "")
                            .map_err(|e| kb.e(e))?;
                    cs.push(kb.zext64(c)?);
                    lin =
                        kb.b.build_int_unsigned_div(lin, dd, "")
                            .map_err(|e| kb.e(e))?;
                }
                cs.reverse();
                cs
            } else {
                unravel(kb, i, &dims)?
            };
            let at = At { coords, acc: None };
            for &(arg, id) in &e.outputs {
                let v = kb.eval(&e.exprs, id, &at)?;
                let dt = e.exprs.get(id).map(|n| n.dtype).ok_or_else(|| {
                    kb.malformed(format!("output expression {id} does not exist"))
                })?;
                let ad = kb.arg_dtype(arg)?;
                if ad != dt {
                    return Err(kb.malformed(format!(
                        "output argument {arg} is {ad} but its expression is {dt}"
                    )));
                }
                kb.store(arg, i, v)?;
            }
            Ok(())
        })?;
        kb.br(done)?;
    }
    kb.b.position_at_end(done);
    kb.ret()
}
