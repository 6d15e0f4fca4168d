//! Resolving symbolic sizes under the run's bindings, and the compile-time checks that keep
//! generated code in bounds.

use super::{Bindings, CpuError};
use crate::spec::{IndexMap, KernelSpec, Program, Term};
use dqc_ir::{DType, Dim, Shape};

/// One kernel argument as the backend sees it.
#[derive(Clone, Copy, Debug)]
pub(super) struct ArgInfo {
    /// Element type of the bound buffer.
    pub dtype: DType,
    /// Element count of the bound buffer under the bindings.
    pub numel: u64,
}

/// An [`IndexMap`] with every size resolved.
#[derive(Clone, Debug)]
pub(super) struct Map {
    /// Element offset.
    pub offset: i64,
    /// One stride per iteration axis.
    pub strides: Vec<i64>,
}

/// Resolution context of one kernel.
pub(super) struct Ctx<'a> {
    /// Kernel name, for errors.
    pub kernel: &'a str,
    /// Symbol values.
    pub bindings: &'a Bindings,
    /// The kernel's arguments.
    pub args: Vec<ArgInfo>,
}

impl<'a> Ctx<'a> {
    /// Resolve the arguments of `spec` against `program`'s buffers.
    pub fn new(
        program: &'a Program,
        spec: &'a KernelSpec,
        bindings: &'a Bindings,
    ) -> Result<Ctx<'a>, CpuError> {
        let mut ctx = Ctx {
            kernel: &spec.name,
            bindings,
            args: Vec::with_capacity(spec.args.len()),
        };
        for (i, &b) in spec.args.iter().enumerate() {
            let buf = program.buffers.get(b as usize).ok_or_else(|| {
                ctx.malformed(format!(
                    "argument {i} names buffer {b}, but the program has {} buffers",
                    program.buffers.len()
                ))
            })?;
            let dims = ctx.shape(&buf.shape)?;
            let numel = dims
                .iter()
                .try_fold(1u64, |a, &d| a.checked_mul(d))
                .filter(|&n| n <= i64::MAX as u64 / 16)
                .ok_or_else(|| ctx.malformed(format!("buffer `{}` is too large", buf.name)))?;
            ctx.args.push(ArgInfo {
                dtype: buf.dtype,
                numel,
            });
        }
        for &w in &spec.writes {
            if w as usize >= ctx.args.len() {
                return Err(ctx.malformed(format!(
                    "writes argument {w}, but the kernel has {} arguments",
                    ctx.args.len()
                )));
            }
        }
        Ok(ctx)
    }

    /// A `Malformed` error of this kernel.
    pub fn malformed(&self, what: impl Into<String>) -> CpuError {
        CpuError::Malformed {
            kernel: self.kernel.to_string(),
            what: what.into(),
        }
    }

    /// An `Unsupported` error of this kernel.
    pub fn unsupported(&self, what: impl Into<String>) -> CpuError {
        CpuError::Unsupported {
            kernel: self.kernel.to_string(),
            what: what.into(),
        }
    }

    /// The argument `arg`.
    pub fn arg(&self, arg: u32) -> Result<ArgInfo, CpuError> {
        self.args.get(arg as usize).copied().ok_or_else(|| {
            self.malformed(format!(
                "uses argument {arg}, but the kernel has {} arguments",
                self.args.len()
            ))
        })
    }

    /// Value of a dimension.
    pub fn dim(&self, d: &Dim) -> Result<u64, CpuError> {
        d.eval(self.bindings).ok_or_else(|| self.unbound(d))
    }

    fn unbound(&self, d: &Dim) -> CpuError {
        match d
            .symbols()
            .iter()
            .find(|(s, _)| !self.bindings.contains_key(s))
        {
            Some((s, _)) => CpuError::Unbound {
                kernel: self.kernel.to_string(),
                symbol: s.clone(),
            },
            None => self.malformed(format!("dimension {d} overflows under the bindings")),
        }
    }

    /// Value of a dimension as i64.
    pub fn dim_i64(&self, d: &Dim) -> Result<i64, CpuError> {
        let v = self.dim(d)?;
        i64::try_from(v).map_err(|_| self.malformed(format!("dimension {d} overflows")))
    }

    /// Value of a term.
    pub fn term(&self, t: &Term) -> Result<i64, CpuError> {
        let d = self.dim_i64(&t.dim)?;
        t.coeff
            .checked_mul(d)
            .ok_or_else(|| self.malformed(format!("term {}·{} overflows", t.coeff, t.dim)))
    }

    /// Value of a polynomial.
    pub fn poly(&self, p: &[Term]) -> Result<i64, CpuError> {
        p.iter().try_fold(0i64, |acc, t| {
            acc.checked_add(self.term(t)?)
                .ok_or_else(|| self.malformed("an offset overflows"))
        })
    }

    /// Values of a shape.
    pub fn shape(&self, s: &Shape) -> Result<Vec<u64>, CpuError> {
        let v: Vec<u64> = s
            .dims()
            .iter()
            .map(|d| self.dim(d))
            .collect::<Result<_, _>>()?;
        v.iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64 / 16)
            .ok_or_else(|| self.malformed(format!("shape {s} is too large")))?;
        Ok(v)
    }

    /// Resolve an index map over an iteration space of `rank` axes.
    pub fn map(&self, m: &IndexMap, rank: usize, what: &str) -> Result<Map, CpuError> {
        if m.strides.len() != rank {
            return Err(self.malformed(format!(
                "{what}: index map has {} strides for an iteration space of rank {rank}",
                m.strides.len()
            )));
        }
        Ok(Map {
            offset: self.poly(&m.offset)?,
            strides: m
                .strides
                .iter()
                .map(|t| self.term(t))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Check that `offset + Σ c[d]·strides[d]` stays inside argument `arg` for every
    /// coordinate with `ranges[d].0 <= c[d] < ranges[d].1` (nothing to check if a range is
    /// empty).
    pub fn check_bounds(
        &self,
        arg: u32,
        offset: i64,
        strides: &[i64],
        ranges: &[(i64, i64)],
        what: &str,
    ) -> Result<(), CpuError> {
        let info = self.arg(arg)?;
        if ranges.iter().any(|&(lo, hi)| lo >= hi) {
            return Ok(());
        }
        let (mut lo, mut hi) = (i128::from(offset), i128::from(offset));
        for (&s, &(a, b)) in strides.iter().zip(ranges) {
            let x = i128::from(s) * i128::from(a);
            let y = i128::from(s) * i128::from(b - 1);
            lo += x.min(y);
            hi += x.max(y);
        }
        if lo < 0 || hi >= i128::from(info.numel) {
            return Err(CpuError::OutOfBounds {
                kernel: self.kernel.to_string(),
                arg,
                what: format!(
                    "{what} reaches elements {lo}..={hi} of a buffer of {} elements",
                    info.numel
                ),
            });
        }
        Ok(())
    }

    /// Check that argument `arg` holds `numel` elements of `dtype` (a dense output or
    /// operand of a fixed shape).
    pub fn check_dense(
        &self,
        arg: u32,
        dtype: Option<DType>,
        numel: u64,
        what: &str,
    ) -> Result<(), CpuError> {
        let info = self.arg(arg)?;
        if info.numel < numel {
            return Err(CpuError::OutOfBounds {
                kernel: self.kernel.to_string(),
                arg,
                what: format!(
                    "{what} needs {numel} elements, the buffer has {}",
                    info.numel
                ),
            });
        }
        if let Some(dt) = dtype
            && info.dtype != dt
        {
            {
                return Err(self.malformed(format!(
                    "{what}: argument {arg} has dtype {}, expected {dt}",
                    info.dtype
                )));
            }
        }
        Ok(())
    }
}
