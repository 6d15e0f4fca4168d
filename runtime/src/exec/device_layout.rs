//! Where every buffer of a program lives on a device, and the parameters of a kernel's
//! entry (the contract of `dqc_codegen::ptx::abi`). Pure address arithmetic: the CUDA
//! executor feeds it device pointers, the tests plain numbers.

use crate::error::RuntimeError;
use crate::sizes::{root_of, tensor_bytes};
use dqc_codegen::cpu::Bindings;
use dqc_codegen::spec::{BufferKind, KernelSpec, Program};

/// Base addresses a run provides.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bases<'a> {
    /// Start of the activation arena.
    pub arena: u64,
    /// Address of each buffer's weight bytes, indexed by buffer id (0 for non-weights).
    pub weights: &'a [u64],
    /// Address of each graph input, by signature position.
    pub inputs: &'a [u64],
    /// Address of each graph output, by signature position.
    pub outputs: &'a [u64],
}

/// The address of every buffer of `program`: arena base + offset for activations, the
/// given addresses for inputs, outputs and weights, the root's address for aliases.
pub(crate) fn buffer_addrs(program: &Program, bases: &Bases<'_>) -> Result<Vec<u64>, RuntimeError> {
    let missing = |name: &str, what: String| RuntimeError::Size {
        buffer: name.to_string(),
        problem: what,
    };
    let mut addrs = Vec::with_capacity(program.buffers.len());
    for (i, b) in program.buffers.iter().enumerate() {
        let a = match &b.kind {
            BufferKind::Input { index } => *bases
                .inputs
                .get(*index as usize)
                .ok_or_else(|| missing(&b.name, format!("input {index} has no device copy")))?,
            BufferKind::Output { index } => *bases
                .outputs
                .get(*index as usize)
                .ok_or_else(|| missing(&b.name, format!("output {index} has no device buffer")))?,
            BufferKind::Weight { name } => *bases
                .weights
                .get(i)
                .filter(|&&a| a != 0)
                .ok_or_else(|| missing(&b.name, format!("weight `{name}` was not uploaded")))?,
            BufferKind::Activation { offset } => bases
                .arena
                .checked_add(*offset)
                .ok_or_else(|| missing(&b.name, format!("arena offset {offset} overflows")))?,
            BufferKind::Alias { .. } => 0,
        };
        addrs.push(a);
    }
    for (i, b) in program.buffers.iter().enumerate() {
        if let BufferKind::Alias { .. } = b.kind {
            let root = root_of(program, i as u32)
                .ok_or_else(|| missing(&b.name, "alias chain is broken".into()))?;
            let a = addrs.get(root as usize).copied().unwrap_or(0);
            if let Some(slot) = addrs.get_mut(i) {
                *slot = a;
            }
        }
    }
    Ok(addrs)
}

/// Bytes of every buffer under `bindings`; refuses an alias larger than its root.
pub(crate) fn buffer_sizes(
    program: &Program,
    bindings: &Bindings,
) -> Result<Vec<u64>, RuntimeError> {
    let mut sizes = Vec::with_capacity(program.buffers.len());
    for b in &program.buffers {
        sizes.push(tensor_bytes(b.dtype, &b.shape, bindings).ok_or_else(|| {
            RuntimeError::Size {
                buffer: b.name.clone(),
                problem: format!("size of {}{} overflows", b.dtype, b.shape),
            }
        })?);
    }
    for (i, b) in program.buffers.iter().enumerate() {
        let root = root_of(program, i as u32).unwrap_or(i as u32) as usize;
        if sizes.get(i) > sizes.get(root) {
            return Err(RuntimeError::Size {
                buffer: b.name.clone(),
                problem: "is larger than the buffer it aliases under these bindings".into(),
            });
        }
    }
    Ok(sizes)
}

/// The parameter values of `spec`'s entry, each in an 8-byte slot: the fault word's
/// address, the kernel's index `kernel` (a u32 parameter: the driver reads the slot's low
/// 4 bytes, this is little-endian x86-64), one address per argument, one `i64` per program
/// symbol (its binding, as two's complement).
pub(crate) fn pack_params(
    fault: u64,
    kernel: usize,
    spec: &KernelSpec,
    addrs: &[u64],
    program: &Program,
    bindings: &Bindings,
) -> Result<Vec<u64>, RuntimeError> {
    let mut params = Vec::with_capacity(2 + spec.args.len() + program.symbols.len());
    params.push(fault);
    params.push(u64::from(u32::try_from(kernel).map_err(|_| {
        RuntimeError::Size {
            buffer: spec.name.clone(),
            problem: format!("kernel index {kernel} does not fit the u32 parameter"),
        }
    })?));
    for &id in &spec.args {
        let a = addrs
            .get(id as usize)
            .copied()
            .ok_or_else(|| RuntimeError::Size {
                buffer: format!("#{id}"),
                problem: format!("kernel `{}` names a buffer that does not exist", spec.name),
            })?;
        params.push(a);
    }
    for sym in &program.symbols {
        let v = bindings
            .get(&sym.name)
            .copied()
            .ok_or_else(|| RuntimeError::Unbound {
                symbol: sym.name.clone(),
            })?;
        let v = i64::try_from(v).map_err(|_| RuntimeError::SymbolTooLarge {
            symbol: sym.name.clone(),
            value: v,
            max: i64::MAX as u64,
        })?;
        params.push(v as u64);
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dqc_codegen::ptx::abi::param_count;
    use dqc_codegen::spec::{Buffer, Elementwise, Exprs, Kernel, Symbol};
    use dqc_ir::{DType, Dim, Shape};

    fn buf(name: &str, dims: Vec<Dim>, kind: BufferKind) -> Buffer {
        Buffer {
            name: name.into(),
            dtype: DType::F32,
            shape: Shape(dims),
            kind,
        }
    }

    /// in0, w, act(offset 256), alias of act, out0, act(offset 0), alias of alias.
    fn program() -> Program {
        let b = || Dim::sym("B");
        Program {
            symbols: vec![Symbol {
                name: "B".into(),
                max: 8,
            }],
            buffers: vec![
                buf(
                    "x",
                    vec![b(), Dim::fixed(4)],
                    BufferKind::Input { index: 0 },
                ),
                buf(
                    "w",
                    vec![Dim::fixed(4)],
                    BufferKind::Weight { name: "w".into() },
                ),
                buf(
                    "h",
                    vec![b(), Dim::fixed(4)],
                    BufferKind::Activation { offset: 256 },
                ),
                buf(
                    "h2",
                    vec![Dim::fixed(4), b()],
                    BufferKind::Alias { base: 2 },
                ),
                buf(
                    "y",
                    vec![b(), Dim::fixed(4)],
                    BufferKind::Output { index: 0 },
                ),
                buf("t", vec![b()], BufferKind::Activation { offset: 0 }),
                buf(
                    "h3",
                    vec![b(), Dim::fixed(4)],
                    BufferKind::Alias { base: 3 },
                ),
            ],
            inputs: vec![0],
            outputs: vec![4],
            kernels: vec![],
            arena_bytes: 384,
        }
    }

    #[test]
    fn addresses_follow_the_memory_plan() {
        let p = program();
        let weights = [0, 0x9000, 0, 0, 0, 0, 0];
        let bases = Bases {
            arena: 0x1_0000,
            weights: &weights,
            inputs: &[0x2000],
            outputs: &[0x3000],
        };
        let a = buffer_addrs(&p, &bases).unwrap();
        assert_eq!(
            a,
            vec![
                0x2000, 0x9000, 0x1_0100, 0x1_0100, 0x3000, 0x1_0000, 0x1_0100
            ]
        );
    }

    #[test]
    fn a_missing_device_copy_is_an_error() {
        let p = program();
        let bases = Bases {
            arena: 0,
            weights: &[0; 7],
            inputs: &[0x2000],
            outputs: &[0x3000],
        };
        let e = buffer_addrs(&p, &bases).unwrap_err().to_string();
        assert!(e.contains("weight `w` was not uploaded"), "{e}");
        let bases = Bases {
            arena: 0,
            weights: &[0, 1, 0, 0, 0, 0, 0],
            inputs: &[],
            outputs: &[0x3000],
        };
        let e = buffer_addrs(&p, &bases).unwrap_err().to_string();
        assert!(e.contains("input 0"), "{e}");
    }

    #[test]
    fn sizes_under_bindings() {
        let p = program();
        let bindings: Bindings = [("B".to_string(), 3)].into();
        let s = buffer_sizes(&p, &bindings).unwrap();
        assert_eq!(s, vec![48, 16, 48, 48, 48, 12, 48]);
    }

    #[test]
    fn params_are_fault_kernel_args_symbols() {
        let mut p = program();
        let spec = KernelSpec {
            name: "k".into(),
            args: vec![0, 1, 3, 4],
            writes: vec![3],
            body: Kernel::Elementwise(Elementwise {
                shape: Shape(vec![Dim::sym("B"), Dim::fixed(4)]),
                exprs: Exprs::default(),
                outputs: vec![],
            }),
        };
        p.kernels.push(spec.clone());
        let addrs = [10, 11, 12, 13, 14, 15, 16];
        let bindings: Bindings = [("B".to_string(), 5)].into();
        let params = pack_params(0xfa, 7, &spec, &addrs, &p, &bindings).unwrap();
        assert_eq!(params, vec![0xfa, 7, 10, 11, 13, 14, 5]);
        assert_eq!(params.len(), param_count(&spec, &p));
        let e = pack_params(0xfa, 7, &spec, &addrs, &p, &Bindings::new()).unwrap_err();
        assert!(matches!(e, RuntimeError::Unbound { .. }), "{e}");
        let bad = KernelSpec {
            args: vec![99],
            ..spec
        };
        assert!(pack_params(0, 0, &bad, &addrs, &p, &bindings).is_err());
    }
}
