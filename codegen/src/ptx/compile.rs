//! Program → PTX modules: one LLVM module per kernel family, every kernel of that family an
//! entry in it, optimized at O3 and written by the NVPTX backend for the target's `sm_XX`.

use super::PtxError;
use super::abi::module_names;
use super::builder::Kb;
use super::families;
use crate::spec::Program;
use dqc_ir::target::{Target, TargetKind};
use inkwell::OptimizationLevel;
use inkwell::context::Context;
use inkwell::module::Module;
use inkwell::passes::PassBuilderOptions;
use inkwell::targets::{
    CodeModel, FileType, InitializationConfig, RelocMode, Target as LlvmTarget, TargetMachine,
    TargetTriple,
};
use std::sync::Once;

/// One generated PTX module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PtxText {
    /// Module name (the kernel family, see [`super::abi::module_name`]).
    pub module: String,
    /// PTX assembly.
    pub text: String,
}

const TRIPLE: &str = "nvptx64-nvidia-cuda";

fn machine(target: &Target, module: &str) -> Result<TargetMachine, PtxError> {
    static INIT: Once = Once::new();
    INIT.call_once(|| LlvmTarget::initialize_nvptx(&InitializationConfig::default()));
    if !matches!(target.kind, TargetKind::Cuda { .. }) {
        return Err(PtxError::NotGpu {
            target: target.name.to_string(),
        });
    }
    let triple = TargetTriple::create(TRIPLE);
    let t = LlvmTarget::from_triple(&triple).map_err(|e| PtxError::Llvm {
        module: module.to_string(),
        message: e.to_string(),
    })?;
    t.create_target_machine(
        &triple,
        target.name,
        "",
        OptimizationLevel::Aggressive,
        RelocMode::Default,
        CodeModel::Default,
    )
    .ok_or_else(|| PtxError::Llvm {
        module: module.to_string(),
        message: format!("LLVM has no NVPTX target machine for {}", target.name),
    })
}

fn finish(m: &Module<'_>, tm: &TargetMachine, name: &str) -> Result<String, PtxError> {
    let err = |message: String| PtxError::Llvm {
        module: name.to_string(),
        message,
    };
    m.verify().map_err(|e| err(e.to_string()))?;
    m.run_passes("default<O3>", tm, PassBuilderOptions::create())
        .map_err(|e| err(e.to_string()))?;
    let buf = tm
        .write_to_memory_buffer(m, FileType::Assembly)
        .map_err(|e| err(e.to_string()))?;
    String::from_utf8(buf.as_slice().to_vec()).map_err(|e| err(e.to_string()))
}

fn new_module<'ctx>(cx: &'ctx Context, name: &str, tm: &TargetMachine) -> Module<'ctx> {
    let m = cx.create_module(name);
    m.set_triple(&TargetTriple::create(TRIPLE));
    m.set_data_layout(&tm.get_target_data().get_data_layout());
    m
}

/// Generate PTX for every kernel of `program`: one module per kernel family in first-use
/// order (the plan's PTX section).
pub fn compile_program(program: &Program, target: &Target) -> Result<Vec<PtxText>, PtxError> {
    let mut out = Vec::new();
    let entries = super::abi::entry_names(program);
    for name in module_names(program) {
        let tm = machine(target, name)?;
        let cx = Context::create();
        let m = new_module(&cx, name, &tm);
        for (i, k) in program.kernels.iter().enumerate() {
            if super::abi::module_name(&k.body) != name || entries[i] != super::abi::entry_name(i) {
                continue; // another family, or code shared with an earlier kernel
            }
            let mut kb = Kb::new(&cx, &m, program, i, target)?;
            families::generate(&mut kb)?;
        }
        out.push(PtxText {
            module: name.to_string(),
            text: finish(&m, &tm, name)?,
        });
    }
    Ok(out)
}

/// PTX of a module holding kernel `index` alone (for listings and snapshots).
pub fn compile_kernel(
    program: &Program,
    index: usize,
    target: &Target,
) -> Result<String, PtxError> {
    let k = program.kernels.get(index).ok_or(PtxError::NoSuchKernel {
        index,
        len: program.kernels.len(),
    })?;
    let name = super::abi::module_name(&k.body);
    let tm = machine(target, name)?;
    let cx = Context::create();
    let m = new_module(&cx, name, &tm);
    let mut kb = Kb::new(&cx, &m, program, index, target)?;
    families::generate(&mut kb)?;
    finish(&m, &tm, name)
}
