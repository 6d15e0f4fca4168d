//! The contract between generated PTX and the CUDA executor: entry names, modules,
//! parameters, launch configurations and fault codes. This file needs no LLVM, so the
//! runtime (which carries no LLVM) uses it to launch what the PTX backend generated.
//!
//! - **Modules**: one PTX module per kernel family present in the program, named by
//!   [`module_name`] (`elementwise`, `row_reduce`, `gemm`, …), holding the entries of every
//!   kernel of that family.
//! - **Entries**: kernel `i` of `Program::kernels` runs the entry [`entry_names`]`(p)[i]`:
//!   `dqc_k{j}` where `j` is the first kernel whose body and argument dtypes are identical
//!   to kernel `i`'s (the repeated blocks of a deep model share their code, so each distinct
//!   kernel is generated and JIT-loaded once). [`entry_name`]`(j)` spells the name.
//! - **Parameters**, in order: `fault: u32*` (global), `kernel: u32` (the index `i` of the
//!   kernel being launched, for fault reports), then one `u8*` (global) per kernel argument
//!   (`KernelSpec::args` order, the buffer's base address), then one `i64` per program
//!   symbol (`Program::symbols` order, the run's binding). Sizes, strides and offsets that
//!   depend on symbols are computed inside the kernel from these values.
//! - **Faults**: a kernel that meets bad data (a gather index out of range, an integer
//!   division by zero) stores `code | kernel << 8` into `*fault` if it still holds 0 (first
//!   fault wins), uses a safe value and goes on. The executor reads the word after a run and
//!   reports it with [`describe_fault`].
//! - **Launch**: [`launch_config`] gives grid, block and dynamic shared memory from the spec,
//!   the bindings and the target, using the same tile tables ([`super::tiles`]) as the
//!   generator.

use super::PtxError;
use super::tiles;
use crate::spec::{Kernel, KernelSpec, Program};
use dqc_ir::target::Target;
use dqc_ir::{Dim, Shape};
use std::collections::BTreeMap;

/// Symbol values of one run.
pub type Bindings = BTreeMap<String, u64>;

/// Fault code: a gather index outside `[-len, len)`.
pub const FAULT_GATHER: u32 = 1;
/// Fault code: integer division or remainder by zero.
pub const FAULT_DIV_ZERO: u32 = 2;
/// Fault code: integer power of zero with a negative exponent.
pub const FAULT_POW: u32 = 3;

/// Prefix of every entry name.
pub const ENTRY_PREFIX: &str = "dqc_k";

/// Entry name of kernel `index`.
pub fn entry_name(index: usize) -> String {
    format!("{ENTRY_PREFIX}{index}")
}

/// The entry each kernel runs: kernels with the same body (family, shapes, strides,
/// expressions, tile-relevant parameters) and the same argument dtypes share the entry of
/// the first of them.
pub fn entry_names(program: &Program) -> Vec<String> {
    let mut first: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    program
        .kernels
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let dtypes: Vec<String> = k
                .args
                .iter()
                .map(|&a| {
                    program
                        .buffers
                        .get(a as usize)
                        .map_or_else(|| "?".to_string(), |b| b.dtype.to_string())
                })
                .collect();
            // Debug spells every float (NaN, infinities) and every field exactly
            let key = format!("{:?}|{}|{}", k.body, k.writes.len(), dtypes.join(","));
            entry_name(*first.entry(key).or_insert(i))
        })
        .collect()
}

/// Name of the PTX module holding a kernel of this family.
pub fn module_name(kernel: &Kernel) -> &'static str {
    kernel.family()
}

/// The module names a program needs, in first-use order, each once.
pub fn module_names(program: &Program) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for k in &program.kernels {
        let n = module_name(&k.body);
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

/// Number of parameters of a kernel's entry: fault word, kernel index, arguments, symbols.
pub fn param_count(spec: &KernelSpec, program: &Program) -> usize {
    2 + spec.args.len() + program.symbols.len()
}

/// Turn a nonzero fault word into a message, naming the kernel when the index is valid.
pub fn describe_fault(word: u32, program: &Program) -> String {
    let code = word & 0xff;
    let index = (word >> 8) as usize;
    let what = match code {
        FAULT_GATHER => "a gather index is out of range",
        FAULT_DIV_ZERO => "an integer division by zero",
        FAULT_POW => "an integer power of zero with a negative exponent",
        _ => "an unknown fault",
    };
    match program.kernels.get(index) {
        Some(k) => format!("kernel {index} `{}` ({}): {what}", k.name, k.body.family()),
        None => format!("kernel {index} (not in the program): {what} (fault word {word:#x})"),
    }
}

/// Grid, block and dynamic shared memory of one launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchConfig {
    /// Blocks in x, y, z.
    pub grid: [u32; 3],
    /// Threads per block in x, y, z.
    pub block: [u32; 3],
    /// Dynamic shared memory in bytes.
    pub shared_bytes: u32,
}

impl std::fmt::Display for LaunchConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "grid ({}, {}, {}) block ({}, {}, {}) shared {} B",
            self.grid[0],
            self.grid[1],
            self.grid[2],
            self.block[0],
            self.block[1],
            self.block[2],
            self.shared_bytes
        )
    }
}

/// Largest grid x extent the launcher uses; grid-stride loops cover the rest.
pub const MAX_GRID_X: u64 = 1 << 20;
/// Largest grid y / z extent CUDA allows.
pub const MAX_GRID_YZ: u64 = 65_535;

pub(crate) fn dim_value(
    kernel: &KernelSpec,
    d: &Dim,
    bindings: &Bindings,
) -> Result<u64, PtxError> {
    d.eval(bindings).ok_or_else(|| PtxError::Unbound {
        kernel: kernel.name.clone(),
        dim: format!("{d}"),
    })
}

pub(crate) fn numel(kernel: &KernelSpec, s: &Shape, bindings: &Bindings) -> Result<u64, PtxError> {
    s.dims().iter().try_fold(1u64, |acc, d| {
        let v = dim_value(kernel, d, bindings)?;
        acc.checked_mul(v).ok_or_else(|| PtxError::Malformed {
            kernel: kernel.name.clone(),
            what: format!("shape {s} overflows"),
        })
    })
}

fn ceil_div(a: u64, b: u64) -> u64 {
    a.div_ceil(b.max(1))
}

fn grid_dim(kernel: &KernelSpec, what: &str, v: u64, max: u64) -> Result<u32, PtxError> {
    if v > max {
        return Err(PtxError::Malformed {
            kernel: kernel.name.clone(),
            what: format!("{what} needs {v} blocks, more than the {max} a launch allows"),
        });
    }
    Ok(v.max(1) as u32)
}

/// The launch configuration of kernel `index` of `program` for these bindings on `target`.
pub fn launch_config(
    program: &Program,
    index: usize,
    bindings: &Bindings,
    target: &Target,
) -> Result<LaunchConfig, PtxError> {
    let spec = program.kernels.get(index).ok_or(PtxError::NoSuchKernel {
        index,
        len: program.kernels.len(),
    })?;
    match &spec.body {
        Kernel::Elementwise(e) => {
            let n = numel(spec, &e.shape, bindings)?;
            let t = tiles::ELEMENTWISE_THREADS as u64;
            let g = ceil_div(n, t).clamp(1, MAX_GRID_X);
            Ok(LaunchConfig {
                grid: [g as u32, 1, 1],
                block: [t as u32, 1, 1],
                shared_bytes: 0,
            })
        }
        Kernel::RowReduce(r) => {
            let axis = r.axis as usize;
            let dims = r.shape.dims();
            if axis > dims.len() {
                return Err(PtxError::Malformed {
                    kernel: spec.name.clone(),
                    what: format!("reduce axis {axis} beyond rank {}", dims.len()),
                });
            }
            let rows = numel(spec, &Shape(dims[..axis].to_vec()), bindings)?;
            let g = rows.clamp(1, MAX_GRID_X);
            Ok(LaunchConfig {
                grid: [g as u32, 1, 1],
                block: [tiles::ROW_THREADS, 1, 1],
                shared_bytes: tiles::ROW_SHARED_BYTES,
            })
        }
        Kernel::Gemm(g) => {
            let t = tiles::gemm_tile(g.in_dtype, target);
            let m = dim_value(spec, &g.m, bindings)?;
            let n = dim_value(spec, &g.n, bindings)?;
            let batch = numel(spec, &g.batch, bindings)?;
            Ok(LaunchConfig {
                grid: [
                    grid_dim(spec, "gemm columns", ceil_div(n, t.bn as u64), MAX_GRID_X)?,
                    grid_dim(spec, "gemm rows", ceil_div(m, t.bm as u64), MAX_GRID_YZ)?,
                    grid_dim(spec, "gemm batch", batch, MAX_GRID_YZ)?,
                ],
                block: [t.threads(), 1, 1],
                shared_bytes: t.gemm_shared_bytes(),
            })
        }
        Kernel::Attention(a) => {
            let t = tiles::attention_tile(a.head_dim.max(a.v_head_dim), a.dtype, target);
            let sq = dim_value(spec, &a.sq, bindings)?;
            let b = dim_value(spec, &a.batch, bindings)?;
            Ok(LaunchConfig {
                grid: [
                    grid_dim(
                        spec,
                        "attention queries",
                        ceil_div(sq, t.bq as u64),
                        MAX_GRID_X,
                    )?,
                    grid_dim(spec, "attention heads", a.heads, MAX_GRID_YZ)?,
                    grid_dim(spec, "attention batch", b, MAX_GRID_YZ)?,
                ],
                block: [t.threads(), 1, 1],
                shared_bytes: t.shared_bytes(),
            })
        }
        Kernel::Conv(c) => {
            let t = tiles::conv_tile(c.dtype, target);
            let n = numel(spec, &c.out_shape, bindings)?;
            let per_pixel = c
                .out_shape
                .dims()
                .get(1)
                .map(|d| dim_value(spec, d, bindings))
                .transpose()?
                .unwrap_or(1)
                .max(1);
            let pixels = n / per_pixel;
            Ok(LaunchConfig {
                grid: [
                    grid_dim(
                        spec,
                        "conv pixels",
                        ceil_div(pixels, t.bm as u64),
                        MAX_GRID_X,
                    )?,
                    grid_dim(
                        spec,
                        "conv channels",
                        ceil_div(per_pixel, t.bn as u64),
                        MAX_GRID_YZ,
                    )?,
                    1,
                ],
                block: [t.threads(), 1, 1],
                // the SIMT implicit GEMM stages nothing in shared memory
                shared_bytes: 0,
            })
        }
        Kernel::SelectiveScan(s) => {
            let b = dim_value(spec, &s.batch, bindings)?;
            let d = dim_value(spec, &s.channels, bindings)?;
            let t = tiles::SCAN_THREADS as u64;
            Ok(LaunchConfig {
                grid: [
                    grid_dim(spec, "scan channels", ceil_div(b * d, t), MAX_GRID_X)?,
                    1,
                    1,
                ],
                block: [t as u32, 1, 1],
                shared_bytes: 0,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::{LowerOptions, lower};

    fn program(src: &str) -> Program {
        let mut g = dqc_ir::text::parse(src, None).unwrap();
        dqc_ir::verify::verify(&mut g).unwrap();
        lower(&g, &LowerOptions::default()).unwrap().program
    }

    #[test]
    fn identical_kernels_share_an_entry() {
        let p = program(
            "graph @g(%x: f32[B,8], %y: f32[B,8], %z: f16[B,8]) -> (f32[B,8], f32[B,8], f16[B,8]) {
              %a = softmax(%x) {axis = -1}
              %b = softmax(%y) {axis = -1}
              %c = softmax(%z) {axis = -1}
              return %a, %b, %c
            }",
        );
        let e = entry_names(&p);
        assert_eq!(e.len(), p.kernels.len());
        assert_eq!(e[0], entry_name(0));
        assert_eq!(e[1], entry_name(0), "same code as kernel 0");
        assert_eq!(e[2], entry_name(2), "f16 arguments: its own code");
    }

    #[test]
    fn faults_name_the_kernel() {
        let p = program(
            "graph @g(%x: f32[4]) -> (f32[4]) {
              %a = exp(%x)
              return %a
            }",
        );
        let m = describe_fault(FAULT_GATHER, &p);
        assert!(m.contains("kernel 0") && m.contains("gather"), "{m}");
        let m = describe_fault(FAULT_DIV_ZERO | (7 << 8), &p);
        assert!(m.contains("not in the program"), "{m}");
    }

    #[test]
    fn launch_covers_the_space() {
        let p = program(
            "graph @g(%x: f32[B,1000]) -> (f32[B,1000], f32[B,1000]) {
              %a = exp(%x)
              %b = softmax(%x) {axis = -1}
              return %a, %b
            }",
        );
        let t = dqc_ir::Target::parse("sm_90").unwrap();
        let b: Bindings = [("B".to_string(), 3u64)].into_iter().collect();
        let fam = |f: &str| p.kernels.iter().position(|k| k.body.family() == f).unwrap();
        let l0 = launch_config(&p, fam("elementwise"), &b, &t).unwrap();
        assert_eq!(l0.block, [tiles::ELEMENTWISE_THREADS, 1, 1]);
        assert!(l0.grid[0] as u64 * l0.block[0] as u64 >= 3000);
        let l1 = launch_config(&p, fam("row_reduce"), &b, &t).unwrap();
        assert_eq!(l1.grid, [3, 1, 1], "one block per row");
        assert!(launch_config(&p, p.kernels.len(), &b, &t).is_err());
        let unbound = Bindings::new();
        assert!(matches!(
            launch_config(&p, fam("elementwise"), &unbound, &t),
            Err(PtxError::Unbound { .. })
        ));
    }
}
