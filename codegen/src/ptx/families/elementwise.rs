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

/// Unravel with 32-bit division (the index and every dim below 2^31), widened to i64.
fn unravel32<'ctx>(
    kb: &Kb<'ctx, '_>,
    i: IntValue<'ctx>,
    dims: &[IntValue<'ctx>],
) -> R<Vec<IntValue<'ctx>>> {
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
    Ok(cs)
}

/// Evaluate every output at `coords` and store it at linear index `i`.
fn store_all<'ctx>(
    kb: &mut Kb<'ctx, '_>,
    e: &Elementwise,
    coords: Vec<IntValue<'ctx>>,
    i: IntValue<'ctx>,
) -> R<()> {
    let at = At { coords, acc: None };
    for &(arg, id) in &e.outputs {
        let v = kb.eval(&e.exprs, id, &at)?;
        kb.store(arg, i, v)?;
    }
    Ok(())
}

/// Generate an elementwise kernel.
///
/// Three loops, chosen at run time: when the space has fewer than 2^31 elements and its
/// last axis is a multiple of 4, each thread takes 4 consecutive elements of one row per
/// iteration (one unravel; f32 outputs stored with one 16-byte `st.global.v4.f32` — the
/// element index is a multiple of 4 and buffers are 64-byte aligned); otherwise one element
/// per iteration with 32-bit or, for spaces of 2^31 elements or more, 64-bit index math.
pub(crate) fn generate(kb: &mut Kb<'_, '_>, e: &Elementwise) -> R<()> {
    if e.outputs.is_empty() {
        return Err(kb.malformed("elementwise kernel without outputs"));
    }
    for &(arg, id) in &e.outputs {
        let dt = e
            .exprs
            .get(id)
            .map(|n| n.dtype)
            .ok_or_else(|| kb.malformed(format!("output expression {id} does not exist")))?;
        let ad = kb.arg_dtype(arg)?;
        if ad != dt {
            return Err(kb.malformed(format!(
                "output argument {arg} is {ad} but its expression is {dt}"
            )));
        }
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
    let done = kb.block("done");
    let narrow_or_vec = kb.block("narrow");
    let wide = kb.block("wide_index");
    kb.cond_br(small, narrow_or_vec, wide)?;

    // 32-bit: vector of 4 when the last axis allows it
    kb.b.position_at_end(narrow_or_vec);
    let vec4 = kb.block("vec4");
    let narrow = kb.block("narrow_index");
    match dims.last() {
        Some(&last) => {
            let r = kb.urem(last, kb.i64c(4))?;
            let ok = kb.icmp(IntPredicate::EQ, r, kb.i64c(0))?;
            kb.cond_br(ok, vec4, narrow)?;
        }
        None => kb.br(narrow)?,
    }
    kb.b.position_at_end(vec4);
    let quads = kb.udiv(n, kb.i64c(4))?;
    kb.for_loop(start, quads, step, |kb, q| {
        let i0 = kb.mul(q, kb.i64c(4))?;
        let base = unravel32(kb, i0, &dims)?;
        let last = base.len() - 1;
        let mut vals: Vec<Vec<crate::ptx::builder::Val>> = Vec::with_capacity(4);
        for j in 0..4 {
            let mut c = base.clone();
            c[last] = kb.add(c[last], kb.i64c(j))?;
            let at = At {
                coords: c,
                acc: None,
            };
            let mut row = Vec::with_capacity(e.outputs.len());
            for &(_, id) in &e.outputs {
                row.push(kb.eval(&e.exprs, id, &at)?);
            }
            vals.push(row);
        }
        for (o, &(arg, _)) in e.outputs.iter().enumerate() {
            if kb.arg_dtype(arg)? == dqc_ir::DType::F32 {
                let f32t = kb.cx.f32_type();
                let vt = f32t.vec_type(4);
                let mut v = vt.get_undef();
                for (j, row) in vals.iter().enumerate() {
                    let x = kb.as_f(row[o])?;
                    v =
                        kb.b.build_insert_element(v, x, kb.i32c(j as i32), "")
                            .map_err(|e| kb.e(e))?;
                }
                let p = kb.elem_ptr(kb.arg(arg)?, f32t, i0)?;
                let st = kb.b.build_store(p, v).map_err(|e| kb.e(e))?;
                st.set_alignment(16).map_err(|e| kb.e(e))?;
            } else {
                for (j, row) in vals.iter().enumerate() {
                    let ij = kb.add(i0, kb.i64c(j as i64))?;
                    kb.store(arg, ij, row[o])?;
                }
            }
        }
        Ok(())
    })?;
    kb.br(done)?;

    kb.b.position_at_end(narrow);
    kb.for_loop(start, n, step, |kb, i| {
        let coords = unravel32(kb, i, &dims)?;
        store_all(kb, e, coords, i)
    })?;
    kb.br(done)?;

    kb.b.position_at_end(wide);
    kb.for_loop(start, n, step, |kb, i| {
        let coords = unravel(kb, i, &dims)?;
        store_all(kb, e, coords, i)
    })?;
    kb.br(done)?;

    kb.b.position_at_end(done);
    kb.ret()
}
