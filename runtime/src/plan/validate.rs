//! Consistency checks of a plan header, run before anything executes: every id in range,
//! expression arenas ordered, inputs and outputs agreeing with buffer kinds, activations
//! inside the arena, the signature agreeing with the program.

use super::error::ValidationError;
use super::header::{PlanHeader, Signature};
use crate::sizes::{maxima, root_of, tensor_bytes};
use dqc_codegen::spec::{BufferId, BufferKind, Expr, ExprId, Exprs, Kernel, KernelSpec, Program};
use dqc_ir::Target;
use std::collections::{BTreeMap, BTreeSet};

/// Check everything in the header that does not need the sections. Returns the target.
pub(crate) fn check_header(h: &PlanHeader) -> Result<Target, ValidationError> {
    let target = Target::parse(&h.target)?;
    check_provenance(h)?;
    check_program(&h.program)?;
    check_signature(&h.program, &h.signature)?;
    check_schedule(h)?;
    Ok(target)
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn check_provenance(h: &PlanHeader) -> Result<(), ValidationError> {
    let p = &h.provenance;
    if !is_sha256_hex(&p.source_sha256) {
        return Err(ValidationError::Provenance {
            problem: format!(
                "source_sha256 `{}` is not 64 lowercase hex digits",
                p.source_sha256
            ),
        });
    }
    if let Some(c) = &p.calibration_sha256
        && !is_sha256_hex(c)
    {
        return Err(ValidationError::Provenance {
            problem: format!("calibration_sha256 `{c}` is not 64 lowercase hex digits"),
        });
    }
    Ok(())
}

/// Check a program on its own (no weights).
pub(crate) fn check_program(p: &Program) -> Result<(), ValidationError> {
    check_symbols(p)?;
    let max = maxima(p);
    for id in 0..p.buffers.len() {
        check_buffer(p, id as BufferId, &max)?;
    }
    check_io_lists(p)?;
    for (ki, k) in p.kernels.iter().enumerate() {
        check_kernel(p, ki, k, &max)?;
    }
    Ok(())
}

fn check_symbols(p: &Program) -> Result<(), ValidationError> {
    let mut seen = BTreeSet::new();
    for s in &p.symbols {
        let bad = |problem: &str| ValidationError::Symbol {
            name: s.name.clone(),
            problem: problem.to_string(),
        };
        if s.name.is_empty() {
            return Err(bad("empty name"));
        }
        if !seen.insert(s.name.as_str()) {
            return Err(bad("declared twice"));
        }
        if s.max == 0 {
            return Err(bad("maximum is 0"));
        }
        let in_inputs = p.inputs.iter().any(|&id| {
            p.buffers.get(id as usize).is_some_and(|b| {
                b.shape
                    .dims()
                    .iter()
                    .any(|d| d.symbols().iter().any(|(n, _)| *n == s.name))
            })
        });
        if !in_inputs {
            return Err(bad("appears in no input shape, so no run can bind it"));
        }
    }
    Ok(())
}

fn check_buffer(
    p: &Program,
    id: BufferId,
    max: &BTreeMap<String, u64>,
) -> Result<(), ValidationError> {
    let Some(b) = p.buffers.get(id as usize) else {
        return Ok(());
    };
    let bad = |problem: String| ValidationError::Buffer {
        id,
        name: b.name.clone(),
        problem,
    };
    for d in b.shape.dims() {
        for (s, _) in d.symbols() {
            if !max.contains_key(s) {
                return Err(bad(format!(
                    "shape {} uses symbol `{s}`, which the program does not declare",
                    b.shape
                )));
            }
        }
    }
    let bytes = tensor_bytes(b.dtype, &b.shape, max).ok_or_else(|| {
        bad(format!(
            "size of {}{} at the symbols' maxima overflows",
            b.dtype, b.shape
        ))
    })?;
    match &b.kind {
        BufferKind::Input { index } => {
            if p.inputs.get(*index as usize) != Some(&id) {
                return Err(bad(format!(
                    "is input {index}, but program.inputs[{index}] is not this buffer"
                )));
            }
        }
        BufferKind::Output { index } => {
            if p.outputs.get(*index as usize) != Some(&id) {
                return Err(bad(format!(
                    "is output {index}, but program.outputs[{index}] is not this buffer"
                )));
            }
        }
        BufferKind::Weight { name } => {
            if name.is_empty() {
                return Err(bad("weight with an empty name".into()));
            }
            if b.shape.as_fixed().is_none() {
                return Err(bad(format!(
                    "weight `{name}` has the symbolic shape {}; weights must be static",
                    b.shape
                )));
            }
        }
        BufferKind::Activation { offset } => {
            if offset
                .checked_add(bytes)
                .is_none_or(|end| end > p.arena_bytes)
            {
                return Err(ValidationError::Arena {
                    name: b.name.clone(),
                    offset: *offset,
                    bytes,
                    arena: p.arena_bytes,
                });
            }
        }
        BufferKind::Alias { base } => {
            if p.buffers.get(*base as usize).is_none() {
                return Err(ValidationError::NoSuchBuffer {
                    what: format!("alias buffer #{id} `{}`", b.name),
                    id: *base,
                    count: p.buffers.len(),
                });
            }
            let root = root_of(p, id).ok_or_else(|| bad("its alias links form a cycle".into()))?;
            let rb = p
                .buffers
                .get(root as usize)
                .ok_or_else(|| bad("bad alias".into()))?;
            let root_bytes = tensor_bytes(rb.dtype, &rb.shape, max).unwrap_or(0);
            if bytes > root_bytes {
                return Err(bad(format!(
                    "aliases `{}` ({root_bytes} bytes at the maxima) but needs {bytes} bytes",
                    rb.name
                )));
            }
        }
    }
    Ok(())
}

fn check_io_lists(p: &Program) -> Result<(), ValidationError> {
    for (what, list, is_input) in [("input", &p.inputs, true), ("output", &p.outputs, false)] {
        for (pos, &id) in list.iter().enumerate() {
            let b = p
                .buffers
                .get(id as usize)
                .ok_or(ValidationError::NoSuchBuffer {
                    what: format!("{what} {pos}"),
                    id,
                    count: p.buffers.len(),
                })?;
            let ok = match b.kind {
                BufferKind::Input { index } => is_input && index as usize == pos,
                BufferKind::Output { index } => !is_input && index as usize == pos,
                BufferKind::Weight { .. }
                | BufferKind::Activation { .. }
                | BufferKind::Alias { .. } => false,
            };
            if !ok {
                return Err(ValidationError::Buffer {
                    id,
                    name: b.name.clone(),
                    problem: format!("listed as {what} {pos}, but its kind is {:?}", b.kind),
                });
            }
        }
    }
    Ok(())
}

/// The arena byte range of a buffer's storage at the maxima, if it is an activation.
fn arena_range(p: &Program, id: BufferId, max: &BTreeMap<String, u64>) -> Option<(u64, u64)> {
    let root = root_of(p, id)?;
    let b = p.buffers.get(root as usize)?;
    match b.kind {
        BufferKind::Activation { offset } => {
            Some((offset, offset + tensor_bytes(b.dtype, &b.shape, max)?))
        }
        BufferKind::Input { .. }
        | BufferKind::Output { .. }
        | BufferKind::Weight { .. }
        | BufferKind::Alias { .. } => None,
    }
}

fn check_kernel(
    p: &Program,
    ki: usize,
    k: &KernelSpec,
    max: &BTreeMap<String, u64>,
) -> Result<(), ValidationError> {
    let bad = |problem: String| ValidationError::Kernel {
        index: ki,
        name: k.name.clone(),
        problem,
    };
    for (j, &id) in k.args.iter().enumerate() {
        if p.buffers.get(id as usize).is_none() {
            return Err(ValidationError::NoSuchBuffer {
                what: format!("argument {j} of kernel #{ki} `{}`", k.name),
                id,
                count: p.buffers.len(),
            });
        }
    }
    let mut written = BTreeSet::new();
    for &w in &k.writes {
        let Some(&id) = k.args.get(w as usize) else {
            return Err(bad(format!(
                "writes argument {w}, but it has {} arguments",
                k.args.len()
            )));
        };
        if !written.insert(w) {
            return Err(bad(format!("lists argument {w} twice in `writes`")));
        }
        let root = root_of(p, id).ok_or_else(|| bad(format!("argument {w}: bad alias")))?;
        if let Some(rb) = p.buffers.get(root as usize)
            && matches!(
                rb.kind,
                BufferKind::Input { .. } | BufferKind::Weight { .. }
            )
        {
            return Err(bad(format!(
                "writes argument {w}, whose storage is the read-only buffer `{}`",
                rb.name
            )));
        }
    }
    // A written argument shares storage with no other argument of the kernel.
    for &w in &written {
        let Some(&wid) = k.args.get(w as usize) else {
            continue;
        };
        for (j, &rid) in k.args.iter().enumerate() {
            if j as u32 == w {
                continue;
            }
            let same_root = root_of(p, wid) == root_of(p, rid);
            let overlap = match (arena_range(p, wid, max), arena_range(p, rid, max)) {
                (Some((a0, a1)), Some((b0, b1))) => a0 < b1 && b0 < a1,
                _ => false,
            };
            if same_root || overlap {
                let how = if written.contains(&(j as u32)) {
                    "also writes"
                } else {
                    "reads"
                };
                return Err(bad(format!(
                    "writes argument {w} and {how} argument {j}, which share storage"
                )));
            }
        }
    }
    check_body(ki, k, &written)
}

/// Check the argument indices and expression ids of a kernel body.
fn check_body(ki: usize, k: &KernelSpec, written: &BTreeSet<u32>) -> Result<(), ValidationError> {
    let nargs = k.args.len();
    let kbad = |problem: String| ValidationError::Kernel {
        index: ki,
        name: k.name.clone(),
        problem,
    };
    let read = |what: &str, a: u32| -> Result<(), ValidationError> {
        if a as usize >= nargs {
            Err(kbad(format!(
                "{what} is argument {a}, but it has {nargs} arguments"
            )))
        } else if written.contains(&a) {
            Err(kbad(format!(
                "{what} reads argument {a}, which it also writes"
            )))
        } else {
            Ok(())
        }
    };
    let write = |what: &str, a: u32| -> Result<(), ValidationError> {
        if written.contains(&a) {
            Ok(())
        } else {
            Err(kbad(format!(
                "{what} is argument {a}, which is not listed in `writes`"
            )))
        }
    };
    let root = |exprs: &Exprs, what: &str, id: ExprId| -> Result<(), ValidationError> {
        if exprs.get(id).is_none() {
            Err(kbad(format!(
                "{what} is expression {id}, but the arena has {} nodes",
                exprs.nodes.len()
            )))
        } else {
            Ok(())
        }
    };
    match &k.body {
        Kernel::Elementwise(e) => {
            check_exprs(ki, k, &e.exprs, &read)?;
            if e.outputs.is_empty() {
                return Err(kbad("an elementwise kernel with no outputs".into()));
            }
            for &(a, id) in &e.outputs {
                write("an output", a)?;
                root(&e.exprs, "an output", id)?;
            }
        }
        Kernel::RowReduce(r) => {
            check_exprs(ki, k, &r.exprs, &read)?;
            root(&r.exprs, "the input", r.input)?;
            root(&r.exprs, "the epilogue", r.epilogue)?;
            write("the output", r.out)?;
            if r.axis as usize > r.shape.rank() {
                return Err(kbad(format!(
                    "reduces from axis {} of a rank-{} space",
                    r.axis,
                    r.shape.rank()
                )));
            }
        }
        Kernel::Gemm(g) => {
            check_exprs(ki, k, &g.exprs, &read)?;
            root(&g.exprs, "the epilogue", g.epilogue)?;
            read("operand A", g.a.arg)?;
            read("operand B", g.b.arg)?;
            write("the output", g.out)?;
        }
        Kernel::Attention(a) => {
            read("the queries", a.q.arg)?;
            read("the keys", a.k.arg)?;
            read("the values", a.v.arg)?;
            if let Some((m, _, _)) = &a.mask {
                read("the mask", *m)?;
            }
            write("the output", a.out)?;
            if a.kv_heads == 0 || a.heads % a.kv_heads != 0 {
                return Err(kbad(format!(
                    "{} query heads are not a multiple of {} key/value heads",
                    a.heads, a.kv_heads
                )));
            }
        }
        Kernel::Conv(c) => {
            check_exprs(ki, k, &c.exprs, &read)?;
            root(&c.exprs, "the epilogue", c.epilogue)?;
            read("the input", c.x)?;
            read("the weight", c.w)?;
            write("the output", c.out)?;
        }
        Kernel::SelectiveScan(s) => {
            for (what, a) in [
                ("u", s.u),
                ("delta", s.delta),
                ("A", s.a),
                ("B", s.bm),
                ("C", s.cm),
            ] {
                read(what, a)?;
            }
            if let Some(d) = s.d {
                read("D", d)?;
            }
            if let Some(z) = s.z {
                read("z", z)?;
            }
            write("the output", s.out)?;
        }
    }
    Ok(())
}

fn check_exprs(
    ki: usize,
    k: &KernelSpec,
    exprs: &Exprs,
    read: &dyn Fn(&str, u32) -> Result<(), ValidationError>,
) -> Result<(), ValidationError> {
    let ebad = |node: u32, problem: String| ValidationError::Expr {
        index: ki,
        name: k.name.clone(),
        node,
        problem,
    };
    if let Err(node) = exprs.check_order() {
        return Err(ebad(
            node,
            "uses an operand that does not precede it".into(),
        ));
    }
    for (ni, n) in exprs.nodes.iter().enumerate() {
        let node = ni as u32;
        let wrap = |e: ValidationError| match e {
            ValidationError::Kernel { problem, .. } => ebad(node, problem),
            other => other,
        };
        match &n.expr {
            Expr::Load { arg, .. } => read("a load", *arg).map_err(wrap)?,
            Expr::Gather { arg, .. } => read("a gather", *arg).map_err(wrap)?,
            Expr::Piecewise { bounds, pieces, .. } => {
                if bounds.len() != pieces.len() || pieces.is_empty() {
                    return Err(ebad(
                        node,
                        format!(
                            "piecewise with {} bounds for {} pieces",
                            bounds.len(),
                            pieces.len()
                        ),
                    ));
                }
            }
            Expr::Const(_)
            | Expr::Coord { .. }
            | Expr::Acc
            | Expr::Unary { .. }
            | Expr::Binary { .. }
            | Expr::Select { .. }
            | Expr::Cast { .. }
            | Expr::Gelu { .. }
            | Expr::Silu { .. } => {}
        }
    }
    Ok(())
}

/// Check that the signature lists the program's inputs and outputs with unique names.
pub(crate) fn check_signature(p: &Program, s: &Signature) -> Result<(), ValidationError> {
    for (what, sigs, ids) in [
        ("input", &s.inputs, &p.inputs),
        ("output", &s.outputs, &p.outputs),
    ] {
        if sigs.len() != ids.len() {
            return Err(ValidationError::Signature {
                problem: format!(
                    "{} {what}s named, the program has {}",
                    sigs.len(),
                    ids.len()
                ),
            });
        }
        let mut seen = BTreeSet::new();
        for (sig, &id) in sigs.iter().zip(ids.iter()) {
            let bad = |problem: String| ValidationError::Signature { problem };
            if sig.name.is_empty() || !seen.insert(sig.name.as_str()) {
                return Err(bad(format!(
                    "{what} name `{}` is empty or used twice",
                    sig.name
                )));
            }
            let b = p
                .buffers
                .get(id as usize)
                .ok_or_else(|| bad(format!("{what} `{}` has no buffer", sig.name)))?;
            if b.dtype != sig.dtype || b.shape != sig.shape {
                return Err(bad(format!(
                    "{what} `{}` is {}{} but its buffer `{}` is {}{}",
                    sig.name, sig.dtype, sig.shape, b.name, b.dtype, b.shape
                )));
            }
        }
    }
    Ok(())
}

fn check_schedule(h: &PlanHeader) -> Result<(), ValidationError> {
    let p = &h.program;
    let max = maxima(p);
    let mut names = BTreeSet::new();
    for slot in &h.cache_slots {
        let what = format!("cache slot `{}`", slot.name);
        if !names.insert(slot.name.as_str()) {
            return Err(ValidationError::Schedule {
                what,
                problem: "declared twice".into(),
            });
        }
        if p.buffers.get(slot.buffer as usize).is_none() {
            return Err(ValidationError::NoSuchBuffer {
                what,
                id: slot.buffer,
                count: p.buffers.len(),
            });
        }
    }
    for step in &h.schedule {
        let bad = |problem: String| ValidationError::Schedule {
            what: format!("schedule step `{}`", step.name),
            problem,
        };
        for &k in &step.kernels {
            if k as usize >= p.kernels.len() {
                return Err(bad(format!(
                    "runs kernel {k}, but the program has {} kernels",
                    p.kernels.len()
                )));
            }
        }
        for (s, v) in &step.bindings {
            match max.get(s) {
                None => return Err(bad(format!("binds the undeclared symbol `{s}`"))),
                Some(m) if v > m || *v == 0 => {
                    return Err(bad(format!("binds `{s}` = {v}, outside 1..={m}")));
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}
