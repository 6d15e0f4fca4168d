//! The plan header: everything but the bulk data, serialized as JSON.

use dqc_codegen::spec::{BufferId, Program};
use dqc_ir::{DType, Shape};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The format version this runtime reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// The header of a plan file (see `docs/plan-format.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanHeader {
    /// Same as the version in the fixed prefix.
    pub format_version: u32,
    /// Target name (`cpu`, `sm_90a`, …), one of `dqc_ir::target::TARGETS`.
    pub target: String,
    /// The lowered program.
    pub program: Program,
    /// Names, dtypes and shapes of the inputs and outputs.
    pub signature: Signature,
    /// Number format chosen per layer or kernel (may be empty).
    #[serde(default)]
    pub precision: Vec<PrecisionEntry>,
    /// Buffers kept across denoising steps (may be empty).
    #[serde(default)]
    pub cache_slots: Vec<CacheSlot>,
    /// Which kernels run at each step (may be empty: every kernel runs every time).
    #[serde(default)]
    pub schedule: Vec<ScheduleStep>,
    /// Where the plan came from.
    pub provenance: Provenance,
    /// Float constants of the program that JSON cannot hold (infinities, NaNs).
    #[serde(default)]
    pub nonfinite: Vec<NonFiniteConst>,
    /// The sections after the header.
    pub sections: Vec<SectionEntry>,
}

/// One input or output of the plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorSig {
    /// Name (the npz array name on the command line).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape, symbolic dims allowed.
    pub shape: Shape,
}

/// The inputs and outputs, in the program's order.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Signature {
    /// Inputs, `program.inputs` order.
    pub inputs: Vec<TensorSig>,
    /// Outputs, `program.outputs` order.
    pub outputs: Vec<TensorSig>,
}

impl Signature {
    /// The signature a program implies: each input and output named after its buffer.
    /// Ids out of range are skipped (validation reports them).
    pub fn from_program(program: &Program) -> Signature {
        let sig = |ids: &[BufferId]| {
            ids.iter()
                .filter_map(|&id| program.buffers.get(id as usize))
                .map(|b| TensorSig {
                    name: b.name.clone(),
                    dtype: b.dtype,
                    shape: b.shape.clone(),
                })
                .collect()
        };
        Signature {
            inputs: sig(&program.inputs),
            outputs: sig(&program.outputs),
        }
    }
}

/// The number format of one layer or kernel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrecisionEntry {
    /// Layer or kernel name.
    pub layer: String,
    /// Format (`f32`, `fp8-e4m3 per-channel`, `nvfp4`, …).
    pub format: String,
}

/// A buffer whose contents survive from one step to the next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheSlot {
    /// Slot name.
    pub name: String,
    /// The buffer kept.
    pub buffer: BufferId,
}

/// One step of the step schedule: the kernels that run and the symbol bindings they use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleStep {
    /// Step name.
    pub name: String,
    /// Kernel indices, in execution order.
    pub kernels: Vec<u32>,
    /// Fixed symbol values of this step (may be empty).
    #[serde(default)]
    pub bindings: BTreeMap<String, u64>,
}

/// Where a plan came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// Version of the dqc that wrote it.
    pub dqc_version: String,
    /// SHA-256 (lowercase hex) of the source model file.
    pub source_sha256: String,
    /// SHA-256 of the calibration data, if any was used.
    pub calibration_sha256: Option<String>,
    /// The compile options, as text.
    pub compile_options: String,
}

/// A float constant that JSON cannot represent, stored by its bits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NonFiniteConst {
    /// Kernel index.
    pub kernel: u32,
    /// Expression node in that kernel's arena (a `Const(Scalar::F(0.0))` placeholder).
    pub node: u32,
    /// `f64::to_bits` of the value.
    pub bits: u64,
}

/// One section of the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionEntry {
    /// Section name (`weights`, `ptx`).
    pub name: String,
    /// Absolute byte offset in the file (a multiple of 64).
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// SHA-256 of the section's bytes, lowercase hex.
    pub sha256: String,
}

/// One PTX module (GPU plans).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PtxModule {
    /// Module name.
    pub name: String,
    /// The target it was generated for (same as the plan's).
    pub target: String,
    /// PTX text.
    pub text: String,
}

/// Everything a caller provides to write a plan, besides the bulk data.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanParts {
    /// Target name.
    pub target: String,
    /// The program.
    pub program: Program,
    /// Input/output names; [`Signature::from_program`] gives the default.
    pub signature: Signature,
    /// Precision table.
    pub precision: Vec<PrecisionEntry>,
    /// Cache slots.
    pub cache_slots: Vec<CacheSlot>,
    /// Step schedule.
    pub schedule: Vec<ScheduleStep>,
    /// Provenance.
    pub provenance: Provenance,
}

impl PlanParts {
    /// Parts with the default signature and empty precision table, cache slots and
    /// schedule.
    pub fn new(target: impl Into<String>, program: Program, provenance: Provenance) -> PlanParts {
        PlanParts {
            target: target.into(),
            signature: Signature::from_program(&program),
            program,
            precision: Vec::new(),
            cache_slots: Vec::new(),
            schedule: Vec::new(),
            provenance,
        }
    }
}
