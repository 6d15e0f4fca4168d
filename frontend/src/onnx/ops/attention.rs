//! `Attention` (opset 23) → IR `Attention` on packed heads, and `RotaryEmbedding`
//! (opset 23) expanded into slices, elementwise ops and concats.
//!
//! Attention: 3-D inputs `[B, S, H·D]` (with `q_num_heads`/`kv_num_heads`) go in
//! directly; 4-D inputs `[B, H, S, D]` are transposed and reshaped to packed heads and the
//! output back. `is_causal` uses the IR's causal flag when `Sq = Sk` (the alignments agree)
//! and an explicit upper-left causal mask otherwise (shifted by the past length P); a
//! sliding window (`left_window_size`/`right_window_size`) is an explicit band mask too.
//! A KV cache (`past_key`/`past_value`, `[B, Hkv, P, D]`) is concatenated before the new
//! keys and values along the sequence; the `present_*` outputs are those
//! concatenations. The `qk_matmul_output` output (modes 0 to 3) is recomputed beside
//! the fused op with matmul/softmax; `softcap ≠ 0`, which the fused op lacks, computes
//! the whole attention that way. `nonpad_kv_seqlen` (valid keys per batch row) becomes a
//! bool mask; with `is_causal` the queries are the last `Sq` of those valid positions.

use dqc_ir::op::{BinaryOp, PadMode, UnaryOp};
use dqc_ir::{DType, Dim, Op};

use crate::FrontendError;
use crate::onnx::import::{Ctx, NodeView, OVal, Registry};
use crate::onnx::ops::emit_util::{
    bin, cast, dtype_of, fscalar, iconst, reshape, shape_of, transpose, un,
};

/// Register the attention converters.
pub fn register(r: &mut Registry) {
    r.register("", "Attention", 23, attention);
    r.register("", "RotaryEmbedding", 23, rotary);
}

/// `[B, H, S, D]` → `[B, S, H·D]`.
fn pack_heads(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    x: &OVal,
    what: &str,
) -> Result<(OVal, Dim), FrontendError> {
    let s = shape_of(ctx, x)?;
    let [b, h, seq, d] = s.dims() else {
        return Err(node.error(format!("{what} must be 3-D or 4-D, found {s}")));
    };
    let hd = h
        .checked_mul(d)
        .ok_or_else(|| node.error("head dims overflow"))?;
    let t = transpose(ctx, x, vec![0, 2, 1, 3], &node.sub(&format!("{what}_bshd")))?;
    let p = reshape(
        ctx,
        &t,
        vec![b.clone(), seq.clone(), hd],
        &node.sub(&format!("{what}_packed")),
    )?;
    Ok((p, h.clone()))
}

fn heads_attr(node: &NodeView<'_>, name: &str) -> Result<u64, FrontendError> {
    let v = node.attr_i(name, 0)?;
    u64::try_from(v).ok().filter(|&v| v > 0).ok_or_else(|| {
        node.attr_error(
            name,
            format!("3-D inputs need a positive head count, found {v}"),
        )
    })
}

fn attention(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let nonpad = ctx.input(node, 6)?;
    let qk_mode = node.attr_i("qk_matmul_output_mode", 0)?;
    if !(0..=3).contains(&qk_mode) {
        return Err(node.attr_error(
            "qk_matmul_output_mode",
            format!("{qk_mode} is not one of 0, 1, 2, 3"),
        ));
    }
    let softcap = node.attr_f("softcap", 0.0)?;
    let left = node.attr_i("left_window_size", -1)?;
    let right = node.attr_i("right_window_size", -1)?;
    let windowed = left >= 0 || right >= 0;
    let q = ctx.req(node, 0)?;
    let k = ctx.req(node, 1)?;
    let v = ctx.req(node, 2)?;
    let dt = dtype_of(ctx, &q)?;
    let k = cast(ctx, &k, dt, &node.sub("k_cast"))?;
    let v = cast(ctx, &v, dt, &node.sub("v_cast"))?;
    let rank = shape_of(ctx, &q)?.rank();
    let past_k = ctx.input(node, 4)?;
    let past_v = ctx.input(node, 5)?;
    let want_present = !node.output_name(1).is_empty() || !node.output_name(2).is_empty();
    // The causal mask of a query at position i keeps the keys j ≤ i + P (P = past length).
    let past_len = match &past_k {
        Some(pk) => shape_of(ctx, pk)?.dims().get(2).and_then(Dim::as_fixed),
        None => Some(0),
    };
    let (k, v, present) = match (past_k, past_v) {
        (None, None) if !want_present => (k, v, None),
        (None, Some(_)) | (Some(_), None) => {
            return Err(node.error("past_key and past_value must be given together"));
        }
        (pk, pv) => {
            // The cache is [B, Hkv, P, D]: bring 3-D keys and values to that layout,
            // append them to the past along the sequence, and attend over the result.
            let (k4, v4) = if rank == 4 {
                (k, v)
            } else {
                let hk = heads_attr(node, "kv_num_heads")?;
                (
                    unpack_heads(ctx, node, &k, hk, "k")?,
                    unpack_heads(ctx, node, &v, hk, "v")?,
                )
            };
            let (k4, v4) = match (pk, pv) {
                (Some(pk), Some(pv)) => {
                    let pk = cast(ctx, &pk, dt, &node.sub("past_k_cast"))?;
                    let pv = cast(ctx, &pv, dt, &node.sub("past_v_cast"))?;
                    (
                        ctx.emit1(Op::Concat { axis: 2 }, &[pk, k4], &node.sub("present_k"))?,
                        ctx.emit1(Op::Concat { axis: 2 }, &[pv, v4], &node.sub("present_v"))?,
                    )
                }
                _ => (k4, v4),
            };
            if rank == 4 {
                (k4.clone(), v4.clone(), Some((k4, v4)))
            } else {
                let (kp, _) = pack_heads(ctx, node, &k4, "k_all")?;
                let (vp, _) = pack_heads(ctx, node, &v4, "v_all")?;
                (kp, vp, Some((k4, v4)))
            }
        }
    };
    let (q, k, v, heads, kv_heads) = if rank == 4 {
        let (q, h) = pack_heads(ctx, node, &q, "q")?;
        let (k, hk) = pack_heads(ctx, node, &k, "k")?;
        let (v, _) = pack_heads(ctx, node, &v, "v")?;
        let (Some(h), Some(hk)) = (h.as_fixed(), hk.as_fixed()) else {
            return Err(node.error("4-D attention needs static head counts"));
        };
        (q, k, v, h, hk)
    } else {
        (
            q,
            k,
            v,
            heads_attr(node, "q_num_heads")?,
            heads_attr(node, "kv_num_heads")?,
        )
    };
    let sq = shape_of(ctx, &q)?.dims().get(1).cloned();
    let sk = shape_of(ctx, &k)?.dims().get(1).cloned();
    let scale = match node.attr("scale") {
        Some(_) => Some(node.attr_f("scale", 1.0)?),
        None => None,
    };
    let mut mask = match ctx.input(node, 3)? {
        Some(m) => {
            let mdt = dtype_of(ctx, &m)?;
            Some(if mdt == DType::Bool {
                m
            } else {
                cast(ctx, &m, dt, &node.sub("mask_cast"))?
            })
        }
        None => None,
    };
    // A mask narrower than the keys (the cache's unused tail) masks the rest out.
    if let (Some(mk), Some(skf)) = (&mask, sk.as_ref().and_then(Dim::as_fixed)) {
        let ms = shape_of(ctx, mk)?;
        if let Some(last) = ms.dims().last().and_then(Dim::as_fixed)
            && last < skf
        {
            let mut pads = vec![0u64; 2 * ms.rank()];
            if let Some(end) = pads.last_mut() {
                *end = skf - last;
            }
            let fill = if dtype_of(ctx, mk)? == DType::Bool {
                0.0
            } else {
                f32::NEG_INFINITY
            };
            let padded = ctx.emit1(
                Op::Pad {
                    pads,
                    mode: PadMode::Constant(fill),
                },
                std::slice::from_ref(mk),
                &node.sub("mask_padded"),
            )?;
            mask = Some(padded);
        }
    }
    let mut causal = node.attr_i("is_causal", 0)? != 0;
    let nonpad_done = nonpad.is_some();
    if let Some(lens) = nonpad {
        // Per batch row b only the first L_b keys are valid; with is_causal the queries
        // are the last Sq positions of those: key j is kept iff j < L_b and
        // (not causal or j ≤ i + L_b − Sq).
        let (Some(n), Some(m)) = (
            sq.as_ref().and_then(Dim::as_fixed),
            sk.as_ref().and_then(Dim::as_fixed),
        ) else {
            return Err(node.input_error(6, "nonpad_kv_seqlen needs static lengths"));
        };
        let lens = cast(ctx, &lens, DType::I64, &node.sub("nonpad_i64"))?;
        let ls = shape_of(ctx, &lens)?;
        let [lb] = ls.dims() else {
            return Err(node.input_error(6, format!("must be 1-D [B], found {ls}")));
        };
        let one = Dim::fixed(1);
        let lens = reshape(
            ctx,
            &lens,
            vec![lb.clone(), one.clone(), one.clone(), one],
            &node.sub("nonpad_b111"),
        )?;
        let js: Vec<i64> = (0..m as i64).collect();
        let jv = iconst(node, DType::I64, vec![m], &js)?;
        let mut keep = bin(ctx, BinaryOp::Less, &jv, &lens, &node.sub("nonpad_valid"))?;
        // rel = j − i + Sq, so the query position is qi = i + L_b − Sq and
        // j ≤ qi ⟺ rel ≤ L_b, qi − j ≤ left ⟺ rel + left ≥ L_b,
        // j − qi ≤ right ⟺ rel − right ≤ L_b.
        let rel_plus = |off: i64| -> Vec<i64> {
            let mut rel = Vec::new();
            for i in 0..n as i64 {
                for j in 0..m as i64 {
                    rel.push(j - i + n as i64 + off);
                }
            }
            rel
        };
        let conds = [
            (causal, 0, BinaryOp::LessEqual, "nonpad_causal"),
            (left >= 0, left, BinaryOp::GreaterEqual, "nonpad_left"),
            (right >= 0, -right, BinaryOp::LessEqual, "nonpad_right"),
        ];
        for (on, off, cmp, tag) in conds {
            if !on {
                continue;
            }
            let rv = iconst(node, DType::I64, vec![n, m], &rel_plus(off))?;
            let c = bin(ctx, cmp, &rv, &lens, &node.sub(tag))?;
            keep = bin(
                ctx,
                BinaryOp::And,
                &keep,
                &c,
                &node.sub(&format!("{tag}_keep")),
            )?;
        }
        causal = false;
        mask = Some(match mask {
            None => keep,
            Some(mk) if dtype_of(ctx, &mk)? == DType::Bool => {
                bin(ctx, BinaryOp::And, &mk, &keep, &node.sub("nonpad_mask"))?
            }
            Some(mk) => {
                let ninf = fscalar(node, dt, f32::NEG_INFINITY)?;
                ctx.emit1(Op::Where, &[keep, mk, ninf], &node.sub("nonpad_mask"))?
            }
        });
    }
    let windowed = windowed && !nonpad_done;
    if (causal && sq != sk) || windowed {
        // ONNX aligns the causal mask to the upper left (key j ≤ query i), shifted by
        // the past length P when there is a KV cache; a sliding window keeps the keys
        // with i + P − left ≤ j ≤ i + P + right.
        let (Some(n), Some(m)) = (
            sq.as_ref().and_then(Dim::as_fixed),
            sk.as_ref().and_then(Dim::as_fixed),
        ) else {
            return Err(node.error(
                "is_causal with different query and key lengths, or a sliding window, needs \
                 static lengths",
            ));
        };
        let p = past_len
            .ok_or_else(|| node.error("is_causal with a KV cache needs a static past length"))?;
        let mut keep = Vec::new();
        let p = i64::try_from(p).map_err(|_| node.error("past length overflows"))?;
        for i in 0..n as i64 {
            for j in 0..m as i64 {
                let qi = i + p;
                let ok = (!causal || j <= qi)
                    && (left < 0 || qi - j <= left)
                    && (right < 0 || j - qi <= right);
                keep.push(i64::from(ok));
            }
        }
        let cm = iconst(node, DType::Bool, vec![n, m], &keep)?;
        mask = Some(match mask {
            None => cm,
            Some(mk) if dtype_of(ctx, &mk)? == DType::Bool => {
                bin(ctx, BinaryOp::And, &mk, &cm, &node.sub("causal_mask"))?
            }
            Some(mk) => {
                let ninf = fscalar(node, dt, f32::NEG_INFINITY)?;
                ctx.emit1(Op::Where, &[cm, mk, ninf], &node.sub("causal_mask"))?
            }
        });
        causal = false;
    }
    let stages = if node.output_name(3).is_empty() && softcap == 0.0 {
        None
    } else {
        Some(qk_stages(
            ctx,
            node,
            &QkParts {
                q: q.clone(),
                k: k.clone(),
                heads,
                kv_heads,
                scale,
                mask: mask.clone(),
                causal,
                dt,
                softcap,
            },
        )?)
    };
    let qk_out = match (&stages, node.output_name(3).is_empty()) {
        (Some(st), false) => {
            let i = usize::try_from(qk_mode).unwrap_or(0);
            Some(
                st.get(i)
                    .cloned()
                    .ok_or_else(|| node.error("no such qk stage"))?,
            )
        }
        _ => None,
    };
    let op = Op::Attention {
        heads,
        kv_heads,
        scale,
        causal,
        has_mask: mask.is_some(),
    };
    let mut ins = vec![q, k, v];
    ins.extend(mask);
    let with_present = |y: OVal| {
        let mut outs = vec![y];
        if let Some((pk, pv)) = present {
            outs.extend([pk, pv]);
        }
        if let Some(qk) = qk_out {
            // Output 3; present_* may be absent (empty names), their slots unused.
            while outs.len() < 3 {
                outs.push(qk.clone());
            }
            outs.push(qk);
        }
        outs
    };
    if let Some(probs) = stages
        .as_ref()
        .and_then(|st| st.get(3))
        .filter(|_| softcap != 0.0)
    {
        // The fused op has no soft-capping: finish the decomposition, probs · V.
        let v4 = unpack_heads(ctx, node, &ins[2], kv_heads, "sv_v")?;
        let v4 = repeat_kv(ctx, node, v4, heads, kv_heads, "sv_v")?;
        let y4 = ctx.emit1(Op::MatMul, &[probs.clone(), v4], &node.sub("sv"))?;
        if rank == 4 {
            return Ok(with_present(y4));
        }
        let t = transpose(ctx, &y4, vec![0, 2, 1, 3], &node.sub("sv_bshd"))?;
        let ts = shape_of(ctx, &t)?;
        let [b, s, h, dv] = ts.dims() else {
            return Err(node.error(format!("attention gave shape {ts}")));
        };
        let hd = h
            .checked_mul(dv)
            .ok_or_else(|| node.error("head dims overflow"))?;
        let y = reshape(ctx, &t, vec![b.clone(), s.clone(), hd], &node.name())?;
        return Ok(with_present(y));
    }
    if rank != 4 {
        return Ok(with_present(ctx.emit1(op, &ins, &node.name())?));
    }
    let y = ctx.emit1(op, &ins, &node.sub("packed"))?;
    let ys = shape_of(ctx, &y)?;
    let [b, s, hd] = ys.dims() else {
        return Err(node.error(format!("attention gave shape {ys}")));
    };
    let dv = hd
        .checked_div(&Dim::fixed(heads))
        .ok_or_else(|| node.error("value width not divisible by heads"))?;
    let y = reshape(
        ctx,
        &y,
        vec![b.clone(), s.clone(), Dim::fixed(heads), dv],
        &node.sub("bshd"),
    )?;
    Ok(with_present(transpose(
        ctx,
        &y,
        vec![0, 2, 1, 3],
        &node.name(),
    )?))
}

/// What [`qk_matmul_output`] needs: packed `q`/`k` (`[B, S, H·D]`, the KV cache
/// included), the head counts and the attention's scale, mask, causal flag and dtype.
struct QkParts {
    q: OVal,
    k: OVal,
    heads: u64,
    kv_heads: u64,
    scale: Option<f32>,
    mask: Option<OVal>,
    causal: bool,
    dt: DType,
    softcap: f32,
}

/// The stages of ONNX `Attention` on `[B, H, Sq, Sk]` logits, indexed by
/// `qk_matmul_output_mode`: 0 `scale·Q·Kᵀ`; 1 with the mask applied (a bool mask and
/// the IR causal flag as −inf where masked, a float mask added), or with softcap the
/// soft-capped `softcap·tanh(x/softcap)` logits before the mask; 2 soft-capped and
/// masked (no corpus case checks mode 2); 3 the softmax over keys of that, 0 on fully
/// masked rows.
fn qk_stages(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    p: &QkParts,
) -> Result<Vec<OVal>, FrontendError> {
    let q4 = unpack_heads(ctx, node, &p.q, p.heads, "qk_q")?;
    let k4 = unpack_heads(ctx, node, &p.k, p.kv_heads, "qk_k")?;
    let k4 = repeat_kv(ctx, node, k4, p.heads, p.kv_heads, "qk_k")?;
    let qs = shape_of(ctx, &q4)?;
    let [_, _, sq, d] = qs.dims() else {
        return Err(node.error(format!("query gave shape {qs}")));
    };
    let kt = transpose(ctx, &k4, vec![0, 1, 3, 2], &node.sub("qk_kt"))?;
    let raw = ctx.emit1(Op::MatMul, &[q4, kt], &node.sub("qk_raw"))?;
    let scale = match p.scale {
        Some(s) => s,
        None => {
            let d = d
                .as_fixed()
                .ok_or_else(|| node.error(format!("head size {d} must be static")))?;
            1.0 / (d as f32).sqrt()
        }
    };
    let sc = fscalar(node, p.dt, scale)?;
    let scaled = bin(ctx, BinaryOp::Mul, &raw, &sc, &node.sub("qk_scaled"))?;
    // As the ONNX reference outputs show: with softcap the logits are capped before the
    // mask (a −inf mask stays −inf) and mode 1 reports the capped logits without the
    // mask; without softcap mode 1 is the masked logits.
    let (stage1, qk) = if p.softcap != 0.0 {
        let c = fscalar(node, p.dt, p.softcap)?;
        let x = bin(ctx, BinaryOp::Div, &scaled, &c, &node.sub("qk_cap_in"))?;
        let t = un(ctx, UnaryOp::Tanh, &x, &node.sub("qk_cap_tanh"))?;
        let capped = bin(ctx, BinaryOp::Mul, &t, &c, &node.sub("qk_capped"))?;
        let qk = apply_mask(ctx, node, p, sq, &capped, "qk_masked")?;
        (capped, qk)
    } else {
        let masked = apply_mask(ctx, node, p, sq, &scaled, "qk_masked")?;
        (masked.clone(), masked)
    };
    let stage2 = qk.clone();
    let sm = ctx.emit1(Op::Softmax { axis: -1 }, &[qk], &node.sub("qk_softmax"))?;
    // A fully masked row (all −inf) gives NaN; ONNX defines its probabilities as 0.
    let not_nan = bin(ctx, BinaryOp::Equal, &sm, &sm, &node.sub("qk_not_nan"))?;
    let zero = fscalar(node, p.dt, 0.0)?;
    let probs = ctx.emit1(Op::Where, &[not_nan, sm, zero], &node.sub("qk_probs"))?;
    Ok(vec![scaled, stage1, stage2, probs])
}

/// `x` with the attention's mask applied: a bool mask and the IR causal flag put −inf
/// where masked, a float mask is added.
fn apply_mask(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    p: &QkParts,
    sq: &Dim,
    x: &OVal,
    tag: &str,
) -> Result<OVal, FrontendError> {
    let ninf = fscalar(node, p.dt, f32::NEG_INFINITY)?;
    let mut qk = x.clone();
    if let Some(m) = &p.mask {
        qk = if dtype_of(ctx, m)? == DType::Bool {
            ctx.emit1(Op::Where, &[m.clone(), qk, ninf.clone()], &node.sub(tag))?
        } else {
            bin(ctx, BinaryOp::Add, &qk, m, &node.sub(tag))?
        };
    }
    if p.causal {
        let n = sq
            .as_fixed()
            .ok_or_else(|| node.error("a causal qk_matmul_output needs a static length"))?;
        let mut keep = Vec::new();
        for i in 0..n {
            for j in 0..n {
                keep.push(i64::from(j <= i));
            }
        }
        let cm = iconst(node, DType::Bool, vec![n, n], &keep)?;
        qk = ctx.emit1(
            Op::Where,
            &[cm, qk, ninf],
            &node.sub(&format!("{tag}_causal")),
        )?;
    }
    Ok(qk)
}

/// Repeat each of the `kv_heads` heads of `x: [B, Hkv, S, D]` `heads / kv_heads` times.
fn repeat_kv(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    x: OVal,
    heads: u64,
    kv_heads: u64,
    what: &str,
) -> Result<OVal, FrontendError> {
    if heads == kv_heads {
        return Ok(x);
    }
    let xs = shape_of(ctx, &x)?;
    let [kb, hk, sk, kd] = xs.dims() else {
        return Err(node.error(format!("{what} gave shape {xs}")));
    };
    let g = heads / kv_heads.max(1);
    let five = reshape(
        ctx,
        &x,
        vec![
            kb.clone(),
            hk.clone(),
            Dim::fixed(1),
            sk.clone(),
            kd.clone(),
        ],
        &node.sub(&format!("{what}5")),
    )?;
    let wide = ctx.emit1(
        Op::Expand {
            shape: dqc_ir::Shape(vec![
                kb.clone(),
                hk.clone(),
                Dim::fixed(g),
                sk.clone(),
                kd.clone(),
            ]),
        },
        &[five],
        &node.sub(&format!("{what}_rep")),
    )?;
    reshape(
        ctx,
        &wide,
        vec![kb.clone(), Dim::fixed(heads), sk.clone(), kd.clone()],
        &node.sub(&format!("{what}_heads")),
    )
}

/// `[B, S, H·D]` → `[B, H, S, D]` for `heads` heads.
fn unpack_heads(
    ctx: &mut Ctx<'_>,
    node: &NodeView<'_>,
    x: &OVal,
    heads: u64,
    what: &str,
) -> Result<OVal, FrontendError> {
    let s = shape_of(ctx, x)?;
    let [b, seq, hd] = s.dims() else {
        return Err(node.error(format!("{what} must be 3-D, found {s}")));
    };
    let d = hd.checked_div(&Dim::fixed(heads)).ok_or_else(|| {
        node.error(format!(
            "{what} width {hd} is not divisible by {heads} heads"
        ))
    })?;
    let r = reshape(
        ctx,
        x,
        vec![b.clone(), seq.clone(), Dim::fixed(heads), d],
        &node.sub(&format!("{what}_bshd")),
    )?;
    transpose(
        ctx,
        &r,
        vec![0, 2, 1, 3],
        &node.sub(&format!("{what}_bhsd")),
    )
}

/// Slice `[start, end)` with `step` along the last axis.
fn last_slice(
    ctx: &mut Ctx<'_>,
    x: &OVal,
    start: i64,
    end: i64,
    step: i64,
    name: &str,
) -> Result<OVal, FrontendError> {
    ctx.emit1(
        Op::Slice {
            axes: vec![-1],
            starts: vec![start],
            ends: vec![end],
            steps: vec![step],
        },
        std::slice::from_ref(x),
        name,
    )
}

/// `RotaryEmbedding`: on `x` viewed as `[B, S, H, D]`, rotate the first `rd` features
/// (`rotary_embedding_dim`, default `D`) in pairs — halves `(x1, x2)` or interleaved
/// `(x[2i], x[2i+1])` — by `cos`/`sin` (gathered at `position_ids` when given):
/// `x1·cos - x2·sin`, `x2·cos + x1·sin`; the rest passes through.
fn rotary(ctx: &mut Ctx<'_>, node: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
    let x = ctx.req(node, 0)?;
    let dt = dtype_of(ctx, &x)?;
    let cos = ctx.req(node, 1)?;
    let sin = ctx.req(node, 2)?;
    let cos = cast(ctx, &cos, dt, &node.sub("cos_cast"))?;
    let sin = cast(ctx, &sin, dt, &node.sub("sin_cast"))?;
    let interleaved = node.attr_i("interleaved", 0)? != 0;
    let xs = shape_of(ctx, &x)?;
    // View as [B, S, H, D].
    let (xv, b, s, h, d) = match xs.dims() {
        [b, h, s, d] => {
            let t = transpose(ctx, &x, vec![0, 2, 1, 3], &node.sub("bshd"))?;
            (t, b.clone(), s.clone(), h.clone(), d.clone())
        }
        [b, s, hidden] => {
            let nh = node.attr_i("num_heads", 0)?;
            let nh = u64::try_from(nh).ok().filter(|&n| n > 0).ok_or_else(|| {
                node.attr_error("num_heads", "3-D input needs a positive num_heads")
            })?;
            let d = hidden.checked_div(&Dim::fixed(nh)).ok_or_else(|| {
                node.error(format!(
                    "hidden size {hidden} is not divisible by num_heads {nh}"
                ))
            })?;
            let t = reshape(
                ctx,
                &x,
                vec![b.clone(), s.clone(), Dim::fixed(nh), d.clone()],
                &node.sub("bshd"),
            )?;
            (t, b.clone(), s.clone(), Dim::fixed(nh), d)
        }
        _ => {
            return Err(node.error(format!(
                "RotaryEmbedding needs a 3-D or 4-D input, found {xs}"
            )));
        }
    };
    let dd = d
        .as_fixed()
        .ok_or_else(|| node.error(format!("head size {d} must be static")))? as i64;
    let rd = match node.attr_i("rotary_embedding_dim", 0)? {
        0 => dd,
        r if r > 0 && r <= dd && r % 2 == 0 => r,
        r => {
            return Err(node.attr_error(
                "rotary_embedding_dim",
                format!("{r} must be even and ≤ the head size {dd}"),
            ));
        }
    };
    let (cos, sin) = match ctx.input(node, 3)? {
        Some(pos) => (
            ctx.emit1(
                Op::Gather { axis: 0 },
                &[cos, pos.clone()],
                &node.sub("cos"),
            )?,
            ctx.emit1(Op::Gather { axis: 0 }, &[sin, pos], &node.sub("sin"))?,
        ),
        None => (cos, sin),
    };
    // [B, S, rd/2] → [B, S, 1, rd/2]; a narrower cache is sliced to rd/2.
    let half = rd / 2;
    let fit = |ctx: &mut Ctx<'_>, c: OVal, what: &str| -> Result<OVal, FrontendError> {
        let cs = shape_of(ctx, &c)?;
        let c = if cs.dims().last() == Some(&Dim::fixed(half as u64)) {
            c
        } else {
            last_slice(ctx, &c, 0, half, 1, &node.sub(&format!("{what}_rd")))?
        };
        let cs = shape_of(ctx, &c)?;
        let [cb, css, _] = cs.dims() else {
            return Err(node.error(format!(
                "{what} must be [B, S, rd/2] after position lookup, found {cs}"
            )));
        };
        reshape(
            ctx,
            &c,
            vec![
                cb.clone(),
                css.clone(),
                Dim::fixed(1),
                Dim::fixed(half as u64),
            ],
            &node.sub(&format!("{what}_b")),
        )
    };
    let cos = fit(ctx, cos, "cos")?;
    let sin = fit(ctx, sin, "sin")?;
    let xr = if rd == dd {
        xv.clone()
    } else {
        last_slice(ctx, &xv, 0, rd, 1, &node.sub("x_rot"))?
    };
    let (x1, x2) = if interleaved {
        (
            last_slice(ctx, &xr, 0, rd, 2, &node.sub("x1"))?,
            last_slice(ctx, &xr, 1, rd, 2, &node.sub("x2"))?,
        )
    } else {
        (
            last_slice(ctx, &xr, 0, half, 1, &node.sub("x1"))?,
            last_slice(ctx, &xr, half, rd, 1, &node.sub("x2"))?,
        )
    };
    let a = bin(ctx, BinaryOp::Mul, &x1, &cos, &node.sub("x1_cos"))?;
    let bb = bin(ctx, BinaryOp::Mul, &x2, &sin, &node.sub("x2_sin"))?;
    let real = bin(ctx, BinaryOp::Sub, &a, &bb, &node.sub("real"))?;
    let c = bin(ctx, BinaryOp::Mul, &x2, &cos, &node.sub("x2_cos"))?;
    let e = bin(ctx, BinaryOp::Mul, &x1, &sin, &node.sub("x1_sin"))?;
    let imag = bin(ctx, BinaryOp::Add, &c, &e, &node.sub("imag"))?;
    let rotated = if interleaved {
        let hf = Dim::fixed(half as u64);
        let pair = |ctx: &mut Ctx<'_>, t: &OVal, n: &str| {
            reshape(
                ctx,
                t,
                vec![b.clone(), s.clone(), h.clone(), hf.clone(), Dim::fixed(1)],
                &node.sub(n),
            )
        };
        let r5 = pair(ctx, &real, "real_pair")?;
        let i5 = pair(ctx, &imag, "imag_pair")?;
        let z = ctx.emit1(Op::Concat { axis: -1 }, &[r5, i5], &node.sub("interleave"))?;
        reshape(
            ctx,
            &z,
            vec![b.clone(), s.clone(), h.clone(), Dim::fixed(rd as u64)],
            &node.sub("rotated"),
        )?
    } else {
        ctx.emit1(Op::Concat { axis: -1 }, &[real, imag], &node.sub("rotated"))?
    };
    let full = if rd == dd {
        rotated
    } else {
        let pass = last_slice(ctx, &xv, rd, dd, 1, &node.sub("x_pass"))?;
        ctx.emit1(
            Op::Concat { axis: -1 },
            &[rotated, pass],
            &node.sub("joined"),
        )?
    };
    let out = match xs.dims() {
        [_, _, _, _] => transpose(ctx, &full, vec![0, 2, 1, 3], &node.name())?,
        _ => reshape(ctx, &full, xs.dims().to_vec(), &node.name())?,
    };
    Ok(vec![out])
}
