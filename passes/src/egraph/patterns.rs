//! Recognition of the fused ops exporters decompose: GELU (erf and tanh forms), SiLU,
//! LayerNorm, RMSNorm, adaLN modulate and scaled-dot-product attention.
//!
//! The patterns are written for the canonical forms [`super::algebra`] produces (scalar
//! constants on the right of `mul`/`add`, `x/c` as `x·(1/c)`, `x²` as `x·x`, `x³` as
//! `x·(x·x)`, `1/√v` as `rsqrt(v)`, scalar factors pulled out of matmuls); the other
//! operand orders that exporters emit are written out as separate rules.
//!
//! Rotary embeddings are not recognized: the IR has no rotary op to rewrite them into
//! (they stay as the slices, negations, concats and multiplies the exporter wrote).

use dqc_ir::{Dim, Op, Shape};
use egg::{Id, Subst, rewrite};

use super::lang::{TensorGraph, TensorLang};
use super::rule::{
    Build, Rule, add_attr, attr, close, first_reduced_axis, get, is_const, is_scalar, pat, scalar,
    typed,
};

/// √(2/π), the GELU tanh-form coefficient.
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;

/// The pattern rules.
pub fn rules() -> Vec<Rule> {
    let mut r = vec![
        // x·σ(x) → silu(x)
        rewrite!("recognize-silu";       "(mul ?x (sigmoid ?x))" => { typed("(silu ?x)") }),
        // σ(x)·x → silu(x)
        rewrite!("recognize-silu-rev";   "(mul (sigmoid ?x) ?x)" => { typed("(silu ?x)") }),
    ];
    // 0.5·x·(1 + erf(x·(1/√2))) → gelu_erf(x), in the three groupings exporters emit
    let erf = "(add (erf (mul ?x ?r)) ?one)";
    for (name, lhs) in [
        ("recognize-gelu-erf", format!("(mul (mul ?x {erf}) ?half)")),
        (
            "recognize-gelu-erf-half",
            format!("(mul (mul ?x ?half) {erf})"),
        ),
        (
            "recognize-gelu-erf-inner",
            format!("(mul ?x (mul {erf} ?half))"),
        ),
    ] {
        r.push(rewrite!(name; {pat(&lhs)} => { typed("(gelu_erf ?x)") }
            if is_const("?r", std::f64::consts::FRAC_1_SQRT_2) if is_const("?one", 1.0) if is_const("?half", 0.5)));
    }
    // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) → gelu_tanh(x), same three groupings
    let tanh = "(add (tanh (mul (add ?x (mul (mul ?x (mul ?x ?x)) ?a)) ?b)) ?one)";
    for (name, lhs) in [
        (
            "recognize-gelu-tanh",
            format!("(mul (mul ?x {tanh}) ?half)"),
        ),
        (
            "recognize-gelu-tanh-half",
            format!("(mul (mul ?x ?half) {tanh})"),
        ),
        (
            "recognize-gelu-tanh-inner",
            format!("(mul ?x (mul {tanh} ?half))"),
        ),
    ] {
        r.push(rewrite!(name; {pat(&lhs)} => { typed("(gelu_tanh ?x)") }
            if is_const("?a", 0.044715) if is_const("?b", SQRT_2_OVER_PI) if is_const("?one", 1.0) if is_const("?half", 0.5)));
    }
    // (x − mean(x))·rsqrt(mean((x − mean(x))²) + eps) → layer_norm(x)
    let c = "(sub ?x (reduce_mean ?m ?x))";
    let ln = format!("(mul {c} (rsqrt (add (reduce_mean ?v (mul {c} {c})) ?eps)))");
    r.push(
        rewrite!("recognize-layer-norm"; {pat(&ln)} => { Build(layer_norm) } if is_scalar("?eps")),
    );
    // layer_norm(x)·γ + β → layer_norm(x; γ, β), γ on either side, β on either side
    for (name, lhs) in [
        (
            "recognize-layer-norm-affine",
            "(add (mul (layer_norm ?a ?x) ?g) ?b)",
        ),
        (
            "recognize-layer-norm-affine-gamma",
            "(add (mul ?g (layer_norm ?a ?x)) ?b)",
        ),
        (
            "recognize-layer-norm-affine-beta",
            "(add ?b (mul (layer_norm ?a ?x) ?g))",
        ),
        (
            "recognize-layer-norm-affine-both",
            "(add ?b (mul ?g (layer_norm ?a ?x)))",
        ),
    ] {
        r.push(rewrite!(name; {pat(lhs)} => { Build(layer_norm_affine) }));
    }
    // x·rsqrt(mean(x·x) + eps) → rms_norm(x), either order
    let inv = "(rsqrt (add (reduce_mean ?m (mul ?x ?x)) ?eps))";
    r.push(rewrite!("recognize-rms-norm";     {pat(&format!("(mul ?x {inv})"))} => { Build(rms_norm) } if is_scalar("?eps")));
    r.push(rewrite!("recognize-rms-norm-rev"; {pat(&format!("(mul {inv} ?x)"))} => { Build(rms_norm) } if is_scalar("?eps")));
    // rms_norm(x)·γ → rms_norm(x; γ), γ on either side
    r.push(rewrite!("recognize-rms-norm-affine";     "(mul (rms_norm ?a ?x) ?g)" => { Build(rms_norm_affine) }));
    r.push(rewrite!("recognize-rms-norm-affine-rev"; "(mul ?g (rms_norm ?a ?x))" => { Build(rms_norm_affine) }));
    // x·(1 + scale) + shift → modulate(x, shift, scale), the operand orders exporters emit
    for (name, lhs) in [
        ("recognize-modulate", "(add (mul ?x (add ?s ?one)) ?t)"),
        (
            "recognize-modulate-scale-left",
            "(add (mul (add ?s ?one) ?x) ?t)",
        ),
        (
            "recognize-modulate-shift-left",
            "(add ?t (mul ?x (add ?s ?one)))",
        ),
    ] {
        r.push(rewrite!(name; {pat(lhs)} => { Build(modulate) } if is_const("?one", 1.0)));
    }
    // x·unsqueeze(1 + scale) + shift → modulate(x, shift, scale)   (1 + scale taken on [B, C])
    for (name, lhs) in [
        (
            "recognize-modulate-unsqueezed",
            "(add (mul ?x (reshape ?r (add ?s ?one))) ?t)",
        ),
        (
            "recognize-modulate-unsqueezed-left",
            "(add (mul (reshape ?r (add ?s ?one)) ?x) ?t)",
        ),
    ] {
        r.push(
            rewrite!(name; {pat(lhs)} => { Build(modulate_unsqueezed) } if is_const("?one", 1.0)),
        );
    }
    // softmax(q@kᵀ·s [+ mask]) @ v → attention(q, k, v [, mask]) on packed heads
    r.push(rewrite!("recognize-attention";          "(matmul (softmax ?ax (mul (matmul ?q ?kt) ?s)) ?v)"          => { Build(attention) } if is_scalar("?s")));
    r.push(rewrite!("recognize-attention-unscaled"; "(matmul (softmax ?ax (matmul ?q ?kt)) ?v)"                   => { Build(attention) }));
    r.push(rewrite!("recognize-attention-mask";     "(matmul (softmax ?ax (add (mul (matmul ?q ?kt) ?s) ?mask)) ?v)" => { Build(attention) } if is_scalar("?s")));
    r.push(rewrite!("recognize-attention-mask-unscaled"; "(matmul (softmax ?ax (add (matmul ?q ?kt) ?mask)) ?v)"  => { Build(attention) }));
    r
}

fn layer_norm(eg: &mut TensorGraph, _class: Id, s: &Subst) -> Option<Id> {
    let axis = first_reduced_axis(eg, s, "?m", "?x")?;
    if first_reduced_axis(eg, s, "?v", "?x")? != axis {
        return None;
    }
    let eps = scalar(eg, s, "?eps")? as f32;
    let x = get(s, "?x")?;
    let a = add_attr(
        eg,
        Op::LayerNorm {
            axis: axis as i64,
            eps,
            affine: false,
        },
    );
    Some(eg.add(TensorLang::LayerNorm([a, x])))
}

fn layer_norm_affine(eg: &mut TensorGraph, _class: Id, s: &Subst) -> Option<Id> {
    let Op::LayerNorm {
        axis,
        eps,
        affine: false,
    } = attr(eg, s, "?a")?
    else {
        return None;
    };
    let (x, g, b) = (get(s, "?x")?, get(s, "?g")?, get(s, "?b")?);
    let a = add_attr(
        eg,
        Op::LayerNorm {
            axis,
            eps,
            affine: true,
        },
    );
    Some(eg.add(TensorLang::LayerNormAffine([a, x, g, b])))
}

fn rms_norm(eg: &mut TensorGraph, _class: Id, s: &Subst) -> Option<Id> {
    let axis = first_reduced_axis(eg, s, "?m", "?x")?;
    let eps = scalar(eg, s, "?eps")? as f32;
    let x = get(s, "?x")?;
    let a = add_attr(
        eg,
        Op::RmsNorm {
            axis: axis as i64,
            eps,
            affine: false,
        },
    );
    Some(eg.add(TensorLang::RmsNorm([a, x])))
}

fn rms_norm_affine(eg: &mut TensorGraph, _class: Id, s: &Subst) -> Option<Id> {
    let Op::RmsNorm {
        axis,
        eps,
        affine: false,
    } = attr(eg, s, "?a")?
    else {
        return None;
    };
    let (x, g) = (get(s, "?x")?, get(s, "?g")?);
    let a = add_attr(
        eg,
        Op::RmsNorm {
            axis,
            eps,
            affine: true,
        },
    );
    Some(eg.add(TensorLang::RmsNormAffine([a, x, g])))
}

/// `v` as the `[B, C]` operand `modulate` takes, for `x: [B, …, C]`: `v` itself if it is
/// `[B, C]`, a reshape if it is `[B, 1, …, 1, C]`; `None` for anything else.
fn per_batch_channel(eg: &mut TensorGraph, v: Id, b: &Dim, c: &Dim, rank: usize) -> Option<Id> {
    let ty = eg[v].data.ty.clone()?;
    let dims = ty.shape.dims();
    let (first, last) = (dims.first()?, dims.last()?);
    if first != b || last != c {
        return None;
    }
    if dims.len() == 2 {
        return Some(v);
    }
    let middle_ones = dims.len() == rank
        && dims[1..dims.len() - 1]
            .iter()
            .all(|d| d.as_fixed() == Some(1));
    if !middle_ones {
        return None;
    }
    let a = add_attr(
        eg,
        Op::Reshape {
            shape: Shape(vec![b.clone(), c.clone()]),
        },
    );
    Some(eg.add(TensorLang::Reshape([a, v])))
}

fn modulate(eg: &mut TensorGraph, _class: Id, s: &Subst) -> Option<Id> {
    let (x, scale, shift) = (get(s, "?x")?, get(s, "?s")?, get(s, "?t")?);
    let xt = eg[x].data.ty.clone()?;
    let dims = xt.shape.dims();
    if dims.len() < 2 {
        return None;
    }
    let (b, c) = (dims.first()?.clone(), dims.last()?.clone());
    let scale = per_batch_channel(eg, scale, &b, &c, dims.len())?;
    let shift = per_batch_channel(eg, shift, &b, &c, dims.len())?;
    Some(eg.add(TensorLang::Modulate([x, shift, scale])))
}

/// Like [`modulate`], where `1 + scale` was taken on `[B, C]` and then reshaped by `?r`
/// to `[B, 1, …, 1, C]`.
fn modulate_unsqueezed(eg: &mut TensorGraph, class: Id, s: &Subst) -> Option<Id> {
    let Op::Reshape { shape } = attr(eg, s, "?r")? else {
        return None;
    };
    let xt = eg[get(s, "?x")?].data.ty.clone()?;
    let (xd, rd) = (xt.shape.dims(), shape.dims());
    let ok = xd.len() == rd.len()
        && xd.len() > 2
        && xd.first() == rd.first()
        && xd.last() == rd.last()
        && rd[1..rd.len() - 1].iter().all(|d| d.as_fixed() == Some(1));
    if !ok {
        return None;
    }
    modulate(eg, class, s)
}

/// A class `x` such that `class` holds `transpose(x, perm)`.
fn transposed_from(eg: &TensorGraph, class: Id, perm: &[usize]) -> Option<Id> {
    eg[class].nodes.iter().find_map(|n| match n {
        TensorLang::Transpose([a, x]) => {
            if let Some(Op::Transpose { perm: p }) = &eg[*a].data.attr
                && p == perm
            {
                Some(*x)
            } else {
                None
            }
        }
        _ => None,
    })
}

/// `repeat_kv` undone: if `class` (`[B, H, S, D]`) holds
/// `reshape(expand(reshape(x, [B,Hkv,1,S,D]), [B,Hkv,n,S,D]), [B,H,S,D])` with
/// `x: [B,Hkv,S,D]`, then `(x, Hkv)`.
fn unrepeat(eg: &TensorGraph, class: Id) -> Option<(Id, u64)> {
    let ty = |id: Id| eg[id].data.ty.as_ref().map(|t| t.shape.dims().to_vec());
    let [b, h, s, d] = <[Dim; 4]>::try_from(ty(class)?).ok()?;
    let child = |id: Id, want: fn(&TensorLang) -> Option<Id>| eg[id].nodes.iter().find_map(want);
    let e = child(class, |n| match n {
        TensorLang::Reshape([_, e]) => Some(*e),
        _ => None,
    })?;
    let r = child(e, |n| match n {
        TensorLang::Expand([_, r]) => Some(*r),
        _ => None,
    })?;
    let x = child(r, |n| match n {
        TensorLang::Reshape([_, x]) => Some(*x),
        _ => None,
    })?;
    let [eb, ehkv, en, es, ed] = <[Dim; 5]>::try_from(ty(e)?).ok()?;
    let [rb, rhkv, one, rs, rd] = <[Dim; 5]>::try_from(ty(r)?).ok()?;
    let xd = ty(x)?;
    let hkv = ehkv.as_fixed()?;
    let n = en.as_fixed()?;
    let ok = [&eb, &rb].iter().all(|v| **v == b)
        && [&es, &rs].iter().all(|v| **v == s)
        && [&ed, &rd].iter().all(|v| **v == d)
        && rhkv == ehkv
        && one.as_fixed() == Some(1)
        && h.as_fixed() == hkv.checked_mul(n)
        && xd == vec![b, ehkv, s, d];
    ok.then_some((x, hkv))
}

/// `(reshape (transpose x perm) shape)` added to the e-graph.
fn transpose_reshape(eg: &mut TensorGraph, x: Id, perm: Vec<usize>, shape: Vec<Dim>) -> Id {
    let p = add_attr(eg, Op::Transpose { perm });
    let t = eg.add(TensorLang::Transpose([p, x]));
    let r = add_attr(
        eg,
        Op::Reshape {
            shape: Shape(shape),
        },
    );
    eg.add(TensorLang::Reshape([r, t]))
}

/// Q `[B,H,Sq,D]`, Kᵀ `[B,H,D,Sk]`, V `[B,H,Sk,Dv]` (no broadcasting between them) →
/// packed `[B,S,H·D]` operands of `Op::Attention`, and the output transposed back to
/// `[B,H,Sq,Dv]`.
fn attention(eg: &mut TensorGraph, _class: Id, s: &Subst) -> Option<Id> {
    let (q, kt, v) = (get(s, "?q")?, get(s, "?kt")?, get(s, "?v")?);
    let ty = |id: Id| eg[id].data.ty.clone();
    let (qt, ktt, vt) = (ty(q)?, ty(kt)?, ty(v)?);
    let [bq, hq, sq, d] = <[Dim; 4]>::try_from(qt.shape.dims().to_vec()).ok()?;
    let [bk, hk, dk, sk] = <[Dim; 4]>::try_from(ktt.shape.dims().to_vec()).ok()?;
    let [bv, hv, skv, dv] = <[Dim; 4]>::try_from(vt.shape.dims().to_vec()).ok()?;
    if bq != bk || bq != bv || hq != hk || hq != hv || d != dk || sk != skv {
        return None;
    }
    let Some(Op::Softmax { axis }) = attr(eg, s, "?ax") else {
        return None;
    };
    if dqc_ir::shape::normalize_axis(axis, 4) != Some(3) {
        return None;
    }
    let heads = hq.as_fixed()?;
    let scale = match get(s, "?s") {
        Some(_) => scalar(eg, s, "?s")?,
        None => 1.0,
    };
    let default = d.as_fixed().map(|d| 1.0 / (d as f64).sqrt());
    let scale = match default {
        Some(def) if close(scale, def) => None,
        _ => Some(scale as f32),
    };
    let hd = hq.checked_mul(&d)?;
    let qp = transpose_reshape(eg, q, vec![0, 2, 1, 3], vec![bq.clone(), sq.clone(), hd]);
    // Grouped-query attention: K and V repeated from Hkv heads (`repeat_kv`) are used
    // unrepeated.
    let k4 = transposed_from(eg, kt, &[0, 1, 3, 2]);
    let grouped = match (k4.and_then(|k4| unrepeat(eg, k4)), unrepeat(eg, v)) {
        (Some((ks, hk)), Some((vs, hv))) if hk == hv && hk < heads => Some((ks, vs, hk)),
        _ => None,
    };
    let (kp, vp, kv_heads) = match grouped {
        Some((ks, vs, hkv)) => {
            let g = Dim::fixed(hkv);
            let kd = vec![bq.clone(), sk.clone(), g.checked_mul(&d)?];
            let vd = vec![bq.clone(), sk, g.checked_mul(&dv)?];
            let kp = transpose_reshape(eg, ks, vec![0, 2, 1, 3], kd);
            let vp = transpose_reshape(eg, vs, vec![0, 2, 1, 3], vd);
            (kp, vp, hkv)
        }
        None => {
            let kd = vec![bq.clone(), sk.clone(), hq.checked_mul(&d)?];
            let vd = vec![bq.clone(), sk, hq.checked_mul(&dv)?];
            let kp = transpose_reshape(eg, kt, vec![0, 3, 1, 2], kd);
            let vp = transpose_reshape(eg, v, vec![0, 2, 1, 3], vd);
            (kp, vp, heads)
        }
    };
    let mask = get(s, "?mask");
    let a = add_attr(
        eg,
        Op::Attention {
            heads,
            kv_heads,
            scale,
            causal: false,
            has_mask: mask.is_some(),
        },
    );
    let out = match mask {
        Some(m) => eg.add(TensorLang::AttentionMasked([a, qp, kp, vp, m])),
        None => eg.add(TensorLang::Attention([a, qp, kp, vp])),
    };
    // [B, Sq, H·Dv] → [B, Sq, H, Dv] → [B, H, Sq, Dv]
    let r = add_attr(
        eg,
        Op::Reshape {
            shape: Shape(vec![bq, sq, hq, dv]),
        },
    );
    let unpacked = eg.add(TensorLang::Reshape([r, out]));
    let p = add_attr(
        eg,
        Op::Transpose {
            perm: vec![0, 2, 1, 3],
        },
    );
    Some(eg.add(TensorLang::Transpose([p, unpacked])))
}
