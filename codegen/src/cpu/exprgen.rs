//! Cranelift code generation for expression arenas: the body of elementwise kernels and the
//! prologues/epilogues of the other families.
//!
//! One generated function evaluates a set of stores over the linear range `[start, end)`
//! of an iteration space (row-major). The loop runs row by row: at the start of each row
//! the coordinates are unravelled once (division by constants) and every index map's row
//! base offset is computed; the inner loop over the last axis then only adds
//! `i · stride_last` per load. Values are f32 for float dtypes (rounded back to f16/bf16/
//! fp8 after each operation whose result has that dtype, as the interpreter rounds each
//! op) and i64 for integers and bool (wrapped to their dtype's width after each op).
//!
//! `Piecewise` branches on the coordinate and evaluates only the chosen piece; loads are
//! bounds-checked at compile time over the coordinate ranges where they can execute.
//! `Gather` checks its index at run time and returns a fault (code, index, extent) instead
//! of reading.

use super::CpuError;
use super::helpers::Helper;
use super::jit::{FAULT_GATHER, Jit};
use super::resolve::{Ctx, Map};
use crate::spec::{Expr, ExprId, Exprs, Scalar};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    Block, BlockArg, FuncRef, InstBuilder, MemFlagsData, Type, Value, types,
};
use cranelift_frontend::FunctionBuilder;
use cranelift_jit::JITModule;
use cranelift_module::{FuncId, Module};
use dqc_ir::DType;
use dqc_ir::op::GeluApprox;
use std::collections::HashMap;

mod memory;
mod ops;
mod vector;

use vector::{LANES, vectorizable};

/// Representation of the scratch values an `Aux` store writes or `Acc` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AccKind {
    /// f32 per element.
    F32,
    /// i64 per element.
    I64,
}

impl AccKind {
    /// The kind that holds values of `dt`.
    pub fn of(dt: DType) -> AccKind {
        if dt.is_float() {
            AccKind::F32
        } else {
            AccKind::I64
        }
    }
}

/// Where an expression's value goes.
#[derive(Clone, Copy, Debug)]
pub(super) enum Store {
    /// Element `linear` of argument `arg` (dense, in the expression's dtype).
    Arg {
        /// Argument index.
        arg: u32,
        /// Expression.
        expr: ExprId,
    },
    /// Element `linear - start` of the aux scratch.
    Aux {
        /// Expression.
        expr: ExprId,
        /// Scratch representation.
        kind: AccKind,
    },
}

/// What to generate.
pub(super) struct ExprKernel<'a> {
    /// The arena.
    pub exprs: &'a Exprs,
    /// Resolved iteration space.
    pub shape: Vec<u64>,
    /// The stores, in order.
    pub stores: Vec<Store>,
    /// If set, `Acc` reads element `linear - start` of aux in this representation.
    pub acc: Option<AccKind>,
}

/// Generate the function; returns its id in the JIT module.
pub(super) fn compile(jit: &mut Jit, ctx: &Ctx, k: &ExprKernel) -> Result<FuncId, CpuError> {
    let jit_err = |e: String| CpuError::Jit {
        kernel: ctx.kernel.to_string(),
        message: e,
    };
    if let Err(n) = k.exprs.check_order() {
        return Err(ctx.malformed(format!(
            "expression node {n} uses an operand that does not precede it"
        )));
    }
    let rank = k.shape.len();
    let shape: Vec<i64> = if rank == 0 {
        vec![1]
    } else {
        k.shape.iter().map(|&d| d as i64).collect()
    };
    // Resolve every reachable map.
    let mut reach = vec![false; k.exprs.nodes.len()];
    let mut stack: Vec<ExprId> = Vec::new();
    for s in &k.stores {
        let id = match *s {
            Store::Arg { expr, .. } | Store::Aux { expr, .. } => expr,
        };
        if k.exprs.get(id).is_none() {
            return Err(ctx.malformed(format!("stores expression {id}, which does not exist")));
        }
        stack.push(id);
    }
    while let Some(id) = stack.pop() {
        if std::mem::replace(&mut reach[id as usize], true) {
            continue;
        }
        if let Some(n) = k.exprs.get(id) {
            stack.extend(Exprs::operands(&n.expr));
        }
    }
    let mut maps: HashMap<ExprId, Map> = HashMap::new();
    for (i, n) in k.exprs.nodes.iter().enumerate() {
        if !reach[i] {
            continue;
        }
        if let Expr::Load { map, .. } | Expr::Gather { map, .. } = &n.expr {
            let mut m = ctx.map(map, rank, &format!("expression {i}"))?;
            if rank == 0 {
                m.strides.push(0);
            }
            maps.insert(i as ExprId, m);
        }
    }

    let id = jit.declare_expr_fn().map_err(jit_err)?;
    let sig = jit.expr_signature();
    let (module, cctx, fctx, helpers) = jit.parts();
    let tcfg = module.target_config();
    cctx.func.signature = sig;
    let mut b = FunctionBuilder::new(&mut cctx.func, fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    let header = b.create_block();
    let row = b.create_block();
    let inner = b.create_block();
    let body = b.create_block();
    let next = b.create_block();
    let exit = b.create_block();
    let errblk = b.create_block();
    for _ in 0..3 {
        b.append_block_param(errblk, types::I64);
    }

    b.switch_to_block(entry);
    let params = b.block_params(entry).to_vec();
    let (args_p, start, end, err_p, aux_p) =
        (params[0], params[1], params[2], params[3], params[4]);
    let lv = b.declare_var(types::I64);
    let iv = b.declare_var(types::I64);
    b.def_var(lv, start);
    // Argument pointers used anywhere.
    let mut used_args: Vec<u32> = Vec::new();
    for (i, n) in k.exprs.nodes.iter().enumerate() {
        if !reach[i] {
            continue;
        }
        if let Expr::Load { arg, .. } | Expr::Gather { arg, .. } = &n.expr {
            used_args.push(*arg);
        }
    }
    for s in &k.stores {
        if let Store::Arg { arg, .. } = s {
            used_args.push(*arg);
        }
    }
    used_args.sort_unstable();
    used_args.dedup();
    let mut argptr = HashMap::new();
    for &a in &used_args {
        ctx.arg(a)?;
        let p = b.ins().load(
            types::I64,
            MemFlagsData::trusted(),
            args_p,
            i32::try_from(a as usize * 8).map_err(|_| ctx.malformed("too many arguments"))?,
        );
        argptr.insert(a, p);
    }
    b.ins().jump(header, &[]);

    b.switch_to_block(header);
    let l = b.use_var(lv);
    let more = b.ins().icmp(IntCC::SignedLessThan, l, end);
    b.ins().brif(more, row, &[], exit, &[]);

    b.switch_to_block(row);
    let r = shape.len();
    let mut coords = vec![l; r];
    let mut rem = l;
    for d in (0..r).rev() {
        let n = shape[d].max(1);
        coords[d] = b.ins().urem_imm_s(rem, n);
        if d > 0 {
            rem = b.ins().udiv_imm_s(rem, n);
        }
    }
    let c_last = coords[r - 1];
    let lin_base = b.ins().isub(l, c_last);
    let row_end = b.ins().iadd_imm_s(lin_base, shape[r - 1]);
    let seg_end = b.ins().smin(end, row_end);
    let i_end = b.ins().isub(seg_end, lin_base);
    let mut rowbase = HashMap::new();
    for (&nid, m) in &maps {
        let mut v = b.ins().iconst(types::I64, m.offset);
        for (&c, &s) in coords.iter().zip(&m.strides).take(r - 1) {
            if s != 0 {
                let t = b.ins().imul_imm_s(c, s);
                v = b.ins().iadd(v, t);
            }
        }
        rowbase.insert(nid, v);
    }
    b.def_var(iv, c_last);
    let vec_ok = vectorizable(ctx, k, &maps, &reach);
    let vhead = b.create_block();
    let vbody = b.create_block();
    b.ins().jump(if vec_ok { vhead } else { inner }, &[]);

    let fma = module.isa().has_native_fma();
    let mut g = Gen {
        fma,
        b,
        module,
        helpers,
        frefs: HashMap::new(),
        ctx,
        k,
        maps: &maps,
        rowbase,
        argptr,
        coords,
        i: c_last,
        lin: c_last,
        start,
        aux: aux_p,
        errblk,
        memo: HashMap::new(),
        ranges: shape.iter().map(|&n| (0, n)).collect(),
        piece_depth: 0,
    };
    if vec_ok {
        // f32x4 loop while four elements of the row remain, then the scalar loop.
        g.b.switch_to_block(vhead);
        let i = g.b.use_var(iv);
        let i4 = g.b.ins().iadd_imm_s(i, LANES);
        let fits = g.b.ins().icmp(IntCC::SignedLessThanOrEqual, i4, i_end);
        g.b.ins().brif(fits, vbody, &[], inner, &[]);
        g.b.switch_to_block(vbody);
        g.i = i;
        g.lin = g.b.ins().iadd(lin_base, i);
        let mut vmemo = HashMap::new();
        for s in &k.stores {
            let (expr, dst, off) = match *s {
                Store::Arg { arg, expr } => (expr, g.argptr[&arg], g.lin),
                Store::Aux { expr, .. } => {
                    let off = g.b.ins().isub(g.lin, start);
                    (expr, aux_p, off)
                }
            };
            let v = g.vval(expr, &mut vmemo)?;
            let a = g.addr(dst, off, 4);
            g.b.ins().store(MemFlagsData::new().with_notrap(), v, a, 0);
        }
        let i4 = g.b.ins().iadd_imm_s(i, LANES);
        g.b.def_var(iv, i4);
        g.b.ins().jump(vhead, &[]);
    } else {
        g.b.switch_to_block(vhead);
        g.b.ins().jump(inner, &[]);
        g.b.switch_to_block(vbody);
        g.b.ins().jump(inner, &[]);
    }

    g.b.switch_to_block(inner);
    let i = g.b.use_var(iv);
    let cont = g.b.ins().icmp(IntCC::SignedLessThan, i, i_end);
    g.b.ins().brif(cont, body, &[], next, &[]);

    g.b.switch_to_block(body);
    g.i = i;
    g.lin = g.b.ins().iadd(lin_base, i);
    let lin = g.lin;
    for s in &k.stores {
        match *s {
            Store::Arg { arg, expr } => {
                let v = g.val(expr)?;
                let dt = g.dtype(expr)?;
                let info = ctx.arg(arg)?;
                if info.dtype != dt {
                    return Err(ctx.malformed(format!(
                        "stores expression {expr} of dtype {dt} into argument {arg} of dtype {}",
                        info.dtype
                    )));
                }
                let total: u64 = k.shape.iter().product();
                if info.numel < total {
                    return Err(CpuError::OutOfBounds {
                        kernel: ctx.kernel.to_string(),
                        arg,
                        what: format!("output of {total} elements into a buffer of {}", info.numel),
                    });
                }
                let p = g.argptr[&arg];
                g.store_mem(p, dt, lin, v)?;
            }
            Store::Aux { expr, kind } => {
                let v = g.val(expr)?;
                let off = g.b.ins().isub(lin, start);
                match kind {
                    AccKind::F32 => {
                        let v = g.as_f(v);
                        let a = g.addr(aux_p, off, 4);
                        g.b.ins().store(MemFlagsData::trusted(), v, a, 0);
                    }
                    AccKind::I64 => {
                        let v = g.as_i(v);
                        let a = g.addr(aux_p, off, 8);
                        g.b.ins().store(MemFlagsData::trusted(), v, a, 0);
                    }
                }
            }
        }
    }
    let mut b = g.b;
    let i1 = b.ins().iadd_imm_s(i, 1);
    b.def_var(iv, i1);
    b.ins().jump(inner, &[]);

    b.switch_to_block(next);
    b.def_var(lv, seg_end);
    b.ins().jump(header, &[]);

    b.switch_to_block(exit);
    let zero = b.ins().iconst(types::I64, 0);
    b.ins().return_(&[zero]);

    b.switch_to_block(errblk);
    let ep = b.block_params(errblk).to_vec();
    b.ins().store(MemFlagsData::trusted(), ep[1], err_p, 0);
    b.ins().store(MemFlagsData::trusted(), ep[2], err_p, 8);
    b.ins().return_(&[ep[0]]);

    b.seal_all_blocks();
    b.finalize(tcfg);
    jit.define(id).map_err(jit_err)?;
    Ok(id)
}

/// A value: f32 (`f`) or i64.
#[derive(Clone, Copy)]
struct Val {
    v: Value,
    f: bool,
}

struct Gen<'a, 'b> {
    b: FunctionBuilder<'b>,
    module: &'a mut JITModule,
    helpers: &'a mut HashMap<Helper, FuncId>,
    frefs: HashMap<Helper, FuncRef>,
    ctx: &'a Ctx<'a>,
    k: &'a ExprKernel<'a>,
    maps: &'a HashMap<ExprId, Map>,
    rowbase: HashMap<ExprId, Value>,
    argptr: HashMap<u32, Value>,
    coords: Vec<Value>,
    i: Value,
    lin: Value,
    start: Value,
    aux: Value,
    errblk: Block,
    memo: HashMap<ExprId, Val>,
    ranges: Vec<(i64, i64)>,
    /// Nesting of piecewise branches at the current point.
    piece_depth: usize,
    /// The target has a fused multiply-add (the inline activations use it).
    fma: bool,
}

fn fv(v: Value) -> Val {
    Val { v, f: true }
}
fn iv(v: Value) -> Val {
    Val { v, f: false }
}

impl Gen<'_, '_> {
    fn dtype(&self, id: ExprId) -> Result<DType, CpuError> {
        self.k.exprs.get(id).map(|n| n.dtype).ok_or_else(|| {
            self.ctx
                .malformed(format!("expression {id} does not exist"))
        })
    }

    fn call(&mut self, h: Helper, args: &[Value]) -> Result<Option<Value>, CpuError> {
        let fref = match self.frefs.get(&h) {
            Some(f) => *f,
            None => {
                let id = Jit::helper(self.module, self.helpers, h).map_err(|e| CpuError::Jit {
                    kernel: self.ctx.kernel.to_string(),
                    message: e,
                })?;
                let f = self.module.declare_func_in_func(id, self.b.func);
                self.frefs.insert(h, f);
                f
            }
        };
        let inst = self.b.ins().call(fref, args);
        Ok(self.b.inst_results(inst).first().copied())
    }

    fn call1(&mut self, h: Helper, args: &[Value]) -> Result<Value, CpuError> {
        self.call(h, args)?.ok_or_else(|| CpuError::Jit {
            kernel: self.ctx.kernel.to_string(),
            message: format!("helper {h:?} returns nothing"),
        })
    }

    fn addr(&mut self, base: Value, off: Value, size: i64) -> Value {
        let o = match size {
            1 => off,
            2 => self.b.ins().ishl_imm_s(off, 1),
            4 => self.b.ins().ishl_imm_s(off, 2),
            8 => self.b.ins().ishl_imm_s(off, 3),
            s => self.b.ins().imul_imm_s(off, s),
        };
        self.b.ins().iadd(base, o)
    }

    fn as_f(&mut self, v: Val) -> Value {
        if v.f {
            v.v
        } else {
            self.b.ins().fcvt_from_sint(types::F32, v.v)
        }
    }

    fn as_i(&mut self, v: Val) -> Value {
        if v.f {
            self.b.ins().fcvt_to_sint_sat(types::I64, v.v)
        } else {
            v.v
        }
    }

    fn bool_of(&mut self, c: Value) -> Value {
        self.b.ins().uextend(types::I64, c)
    }

    /// bf16 bits (in the low 16 of an i32) of an f32, rounded to nearest even.
    fn bf16_bits(&mut self, v: Value) -> Value {
        let bits = self.b.ins().bitcast(types::I32, MemFlagsData::new(), v);
        let hi = self.b.ins().ushr_imm_s(bits, 16);
        let lsb = self.b.ins().band_imm_s(hi, 1);
        let t = self.b.ins().iadd_imm_s(bits, 0x7fff);
        let t = self.b.ins().iadd(t, lsb);
        let rounded = self.b.ins().ushr_imm_s(t, 16);
        let nan = self.b.ins().bor_imm_s(hi, 0x40);
        let isnan = self.b.ins().fcmp(FloatCC::Unordered, v, v);
        self.b.ins().select(isnan, nan, rounded)
    }

    /// Round an f32 to `dt`'s value set.
    fn round_to(&mut self, dt: DType, v: Value) -> Result<Value, CpuError> {
        Ok(match dt {
            DType::F16 => self.call1(Helper::RoundF16, &[v])?,
            DType::BF16 => {
                let bits = self.bf16_bits(v);
                let s = self.b.ins().ishl_imm_s(bits, 16);
                self.b.ins().bitcast(types::F32, MemFlagsData::new(), s)
            }
            DType::F8E4M3 => self.call1(Helper::RoundE4m3, &[v])?,
            DType::F8E5M2 => self.call1(Helper::RoundE5m2, &[v])?,
            DType::F8E4M3Fnuz => self.call1(Helper::RoundE4m3Fnuz, &[v])?,
            DType::F8E5M2Fnuz => self.call1(Helper::RoundE5m2Fnuz, &[v])?,
            DType::Fp4E2M1 => self.call1(Helper::RoundFp4, &[v])?,
            _ => v,
        })
    }

    /// Wrap an i64 to `dt`'s width (bool: `!= 0`).
    fn wrap(&mut self, dt: DType, v: Value) -> Value {
        let ins = |g: &mut Self, t: Type, signed: bool| {
            let r = g.b.ins().ireduce(t, v);
            if signed {
                g.b.ins().sextend(types::I64, r)
            } else {
                g.b.ins().uextend(types::I64, r)
            }
        };
        match dt {
            DType::I32 => ins(self, types::I32, true),
            DType::I8 => ins(self, types::I8, true),
            DType::U8 => ins(self, types::I8, false),
            DType::I4 => {
                let s = self.b.ins().ishl_imm_s(v, 60);
                self.b.ins().sshr_imm_s(s, 60)
            }
            DType::Bool => {
                let c = self.b.ins().icmp_imm_s(IntCC::NotEqual, v, 0);
                self.bool_of(c)
            }
            _ => v,
        }
    }

    /// Bring a value into `dt`'s representation and value set.
    fn fix(&mut self, dt: DType, v: Val) -> Result<Val, CpuError> {
        if dt.is_float() {
            let f = self.as_f(v);
            Ok(fv(self.round_to(dt, f)?))
        } else {
            let i = self.as_i(v);
            Ok(iv(self.wrap(dt, i)))
        }
    }

    fn coord(&self, axis: usize) -> Value {
        if axis + 1 == self.coords.len() {
            self.i
        } else {
            self.coords[axis]
        }
    }

    /// Element offset of map node `id` at the current coordinate.
    fn offset(&mut self, id: ExprId) -> Result<Value, CpuError> {
        let (m, base) = match (self.maps.get(&id), self.rowbase.get(&id)) {
            (Some(m), Some(b)) => (m, *b),
            _ => {
                return Err(self
                    .ctx
                    .malformed(format!("expression {id} has no index map")));
            }
        };
        let s = m.strides.last().copied().unwrap_or(0);
        Ok(match s {
            0 => base,
            1 => self.b.ins().iadd(base, self.i),
            s => {
                let t = self.b.ins().imul_imm_s(self.i, s);
                self.b.ins().iadd(base, t)
            }
        })
    }

    /// Branch to the fault block when `cond` holds; continue in a fresh block.
    fn fault_if(&mut self, cond: Value, code: i64, a: Value, b: Value) {
        let ok = self.b.create_block();
        let c = self.b.ins().iconst(types::I64, code);
        let args = [BlockArg::Value(c), BlockArg::Value(a), BlockArg::Value(b)];
        self.b.ins().brif(cond, self.errblk, &args, ok, &[]);
        self.b.switch_to_block(ok);
    }

    fn val(&mut self, id: ExprId) -> Result<Val, CpuError> {
        if let Some(v) = self.memo.get(&id) {
            return Ok(*v);
        }
        let v = self.gen_node(id)?;
        self.memo.insert(id, v);
        Ok(v)
    }

    fn gen_node(&mut self, id: ExprId) -> Result<Val, CpuError> {
        let node = self.k.exprs.get(id).ok_or_else(|| {
            self.ctx
                .malformed(format!("expression {id} does not exist"))
        })?;
        let dt = node.dtype;
        let ctx = self.ctx;
        match &node.expr {
            Expr::Load { arg, .. } => {
                let info = ctx.arg(*arg)?;
                if info.dtype != dt {
                    return Err(ctx.malformed(format!(
                        "expression {id} loads argument {arg} of dtype {} as {dt}",
                        info.dtype
                    )));
                }
                let m = &self.maps[&id];
                ctx.check_bounds(
                    *arg,
                    m.offset,
                    &m.strides,
                    &self.ranges,
                    &format!("load {id}"),
                )?;
                let off = self.offset(id)?;
                let p = self.argptr[arg];
                let movable = self.piece_depth == 0;
                self.load_mem(p, dt, off, movable)
            }
            Expr::Gather {
                arg,
                index,
                axis_stride,
                axis_len,
                ..
            } => {
                let info = ctx.arg(*arg)?;
                if info.dtype != dt {
                    return Err(ctx.malformed(format!(
                        "expression {id} gathers argument {arg} of dtype {} as {dt}",
                        info.dtype
                    )));
                }
                let len = ctx.dim_i64(axis_len)?;
                let astride = ctx.term(axis_stride)?;
                let m = &self.maps[&id];
                let mut strides = m.strides.clone();
                strides.push(astride);
                let mut ranges = self.ranges.clone();
                ranges.push((0, len));
                ctx.check_bounds(*arg, m.offset, &strides, &ranges, &format!("gather {id}"))?;
                let idx = self.val(*index)?;
                if idx.f {
                    return Err(ctx.malformed(format!("gather {id}: the index is not an integer")));
                }
                let idx = idx.v;
                let lenv = self.b.ins().iconst(types::I64, len);
                let neg = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, idx, 0);
                let adj = self.b.ins().iadd(idx, lenv);
                let n = self.b.ins().select(neg, adj, idx);
                let bad = self
                    .b
                    .ins()
                    .icmp(IntCC::UnsignedGreaterThanOrEqual, n, lenv);
                self.fault_if(bad, FAULT_GATHER, idx, lenv);
                let base = self.offset(id)?;
                let t = self.b.ins().imul_imm_s(n, astride);
                let off = self.b.ins().iadd(base, t);
                let p = self.argptr[arg];
                self.load_mem(p, dt, off, false)
            }
            Expr::Const(s) => {
                let v = match *s {
                    // An infinite literal of a float type is one of its values (f8e5m2's
                    // ±inf): not rounded, which would saturate it.
                    Scalar::F(x) if dt.is_float() && x.is_infinite() => {
                        return Ok(fv(self.b.ins().f32const(x as f32)));
                    }
                    Scalar::F(x) if dt.is_float() => fv(self.b.ins().f32const(x as f32)),
                    Scalar::F(x) => iv(self.b.ins().iconst(types::I64, x as i64)),
                    Scalar::I(x) if dt.is_float() => fv(self.b.ins().f32const(x as f32)),
                    Scalar::I(x) => iv(self.b.ins().iconst(types::I64, x)),
                    Scalar::B(x) if dt.is_float() => {
                        fv(self.b.ins().f32const(f32::from(u8::from(x))))
                    }
                    Scalar::B(x) => iv(self.b.ins().iconst(types::I64, i64::from(x))),
                };
                self.fix(dt, v)
            }
            Expr::Coord { axis } => {
                let a = *axis as usize;
                if a >= self.k.shape.len() {
                    return Err(ctx.malformed(format!(
                        "expression {id}: coordinate axis {a} of a rank-{} space",
                        self.k.shape.len()
                    )));
                }
                let c = self.coord(a);
                self.fix(dt, iv(c))
            }
            Expr::Acc => {
                let Some(kind) = self.k.acc else {
                    return Err(
                        ctx.malformed(format!("expression {id} reads Acc outside an epilogue"))
                    );
                };
                let off = self.b.ins().isub(self.lin, self.start);
                let v = match kind {
                    AccKind::F32 => {
                        let a = self.addr(self.aux, off, 4);
                        fv(self.b.ins().load(types::F32, MemFlagsData::trusted(), a, 0))
                    }
                    AccKind::I64 => {
                        let a = self.addr(self.aux, off, 8);
                        iv(self.b.ins().load(types::I64, MemFlagsData::trusted(), a, 0))
                    }
                };
                self.fix(dt, v)
            }
            Expr::Unary { op, x } => {
                let xd = self.dtype(*x)?;
                let v = self.val(*x)?;
                self.unary(id, *op, xd, dt, v)
            }
            Expr::Binary { op, a, b } => {
                let ad = self.dtype(*a)?;
                let va = self.val(*a)?;
                let vb = self.val(*b)?;
                if va.f != vb.f {
                    return Err(ctx.malformed(format!(
                        "expression {id}: {} of a float and an integer",
                        op.name()
                    )));
                }
                self.binary(id, *op, ad, dt, va, vb)
            }
            Expr::Select { cond, a, b } => {
                let c = self.val(*cond)?;
                let va = self.val(*a)?;
                let vb = self.val(*b)?;
                if c.f || va.f != vb.f {
                    return Err(ctx.malformed(format!(
                        "expression {id}: select needs a bool condition and operands of one kind"
                    )));
                }
                let cc = self.b.ins().icmp_imm_s(IntCC::NotEqual, c.v, 0);
                let v = self.b.ins().select(cc, va.v, vb.v);
                Ok(Val { v, f: va.f })
            }
            Expr::Cast { x } => {
                let from = self.dtype(*x)?;
                let v = self.val(*x)?;
                self.cast(from, dt, v)
            }
            Expr::Gelu { approx, x } => {
                let v = self.val(*x)?;
                if !v.f {
                    return Err(ctx.malformed(format!("expression {id}: gelu of an integer")));
                }
                let r = match approx {
                    GeluApprox::Erf => self.call1(Helper::GeluErf, &[v.v])?,
                    GeluApprox::Tanh => self.gelu_tanh_inline(v.v, false),
                };
                self.fix(dt, fv(r))
            }
            Expr::Silu { x } => {
                let v = self.val(*x)?;
                if !v.f {
                    return Err(ctx.malformed(format!("expression {id}: silu of an integer")));
                }
                let sg = self.sigmoid_inline(v.v, false);
                let r = self.b.ins().fmul(v.v, sg);
                self.fix(dt, fv(r))
            }
            Expr::Piecewise {
                axis,
                bounds,
                pieces,
            } => self.piecewise(id, dt, *axis as usize, bounds, pieces),
        }
    }

    fn piecewise(
        &mut self,
        id: ExprId,
        dt: DType,
        axis: usize,
        bounds: &[crate::spec::Poly],
        pieces: &[ExprId],
    ) -> Result<Val, CpuError> {
        let ctx = self.ctx;
        if axis >= self.k.shape.len() || pieces.is_empty() || bounds.len() != pieces.len() {
            return Err(ctx.malformed(format!(
                "piecewise {id}: axis {axis}, {} bounds and {} pieces",
                bounds.len(),
                pieces.len()
            )));
        }
        let b: Vec<i64> = bounds
            .iter()
            .map(|p| ctx.poly(p))
            .collect::<Result<_, _>>()?;
        let is_f = dt.is_float();
        let merge = self.b.create_block();
        let mv = self
            .b
            .append_block_param(merge, if is_f { types::F32 } else { types::I64 });
        let c = self.coord(axis);
        let saved_memo = self.memo.clone();
        let saved_range = self.ranges[axis];
        for (k, &piece) in pieces.iter().enumerate() {
            let lo = b[k];
            let hi = b.get(k + 1).copied().unwrap_or(i64::MAX);
            let blk = self.b.create_block();
            if k + 1 < pieces.len() {
                let nexttest = self.b.create_block();
                let lt = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, c, hi);
                self.b.ins().brif(lt, blk, &[], nexttest, &[]);
                self.b.switch_to_block(blk);
                self.gen_piece(piece, dt, axis, (lo, hi), saved_range, merge)?;
                self.memo = saved_memo.clone();
                self.b.switch_to_block(nexttest);
            } else {
                self.b.ins().jump(blk, &[]);
                self.b.switch_to_block(blk);
                self.gen_piece(piece, dt, axis, (lo, hi), saved_range, merge)?;
                self.memo = saved_memo.clone();
            }
        }
        self.ranges[axis] = saved_range;
        self.b.switch_to_block(merge);
        Ok(Val { v: mv, f: is_f })
    }

    fn gen_piece(
        &mut self,
        piece: ExprId,
        dt: DType,
        axis: usize,
        (lo, hi): (i64, i64),
        outer: (i64, i64),
        merge: Block,
    ) -> Result<(), CpuError> {
        self.ranges[axis] = (lo.max(outer.0), hi.min(outer.1));
        self.piece_depth += 1;
        let v = self.val(piece);
        self.piece_depth -= 1;
        let v = v?;
        let v = self.fix(dt, v)?;
        self.b.ins().jump(merge, &[BlockArg::Value(v.v)]);
        Ok(())
    }
}
