//! Errors of writing, loading and validating plans.

use std::io;
use std::path::PathBuf;

/// Why a plan could not be loaded or written. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The file could not be opened, mapped, read, written or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file does not start with the plan magic bytes.
    #[error("{path}: not a dqc plan (it does not start with the bytes `DQCPLAN\\0`)")]
    NotAPlan {
        /// The file.
        path: PathBuf,
    },
    /// The file ends before a part its header or prefix declares.
    #[error(
        "{path}: plan is truncated: {what} needs the file to be {expected} bytes long, it has {actual}"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The part cut off (`the fixed prefix`, `the header`, `section \`weights\``).
        what: String,
        /// Bytes the file should have at least.
        expected: u64,
        /// Bytes it has.
        actual: u64,
    },
    /// A format version this runtime does not read.
    #[error("{path}: plan format version {found}, this runtime reads version {supported}")]
    Version {
        /// The file.
        path: PathBuf,
        /// Version in the file.
        found: u32,
        /// Version this runtime reads.
        supported: u32,
    },
    /// The header bytes do not match the checksum in the prefix.
    #[error("{path}: checksum mismatch in the header (the file is corrupt)")]
    HeaderChecksum {
        /// The file.
        path: PathBuf,
    },
    /// A section's bytes do not match its checksum.
    #[error("{path}: checksum mismatch in section `{section}` (the file is corrupt)")]
    SectionChecksum {
        /// The file.
        path: PathBuf,
        /// Section name.
        section: String,
    },
    /// The header is not valid JSON of the expected structure.
    #[error("{path}: malformed plan header: {message}")]
    Header {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The section table does not describe the file (overlaps, gaps with data, trailing
    /// bytes, missing sections).
    #[error("{path}: bad plan layout: {message}")]
    Layout {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The plan was compiled for another target than the one asked for.
    #[error("{path}: the plan was compiled for target `{plan}`, not for `{wanted}`")]
    WrongTarget {
        /// The file.
        path: PathBuf,
        /// The plan's target.
        plan: String,
        /// The target asked for.
        wanted: String,
    },
    /// The contents are inconsistent (program, signature, weights, …).
    #[error("{path}: invalid plan: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: ValidationError,
    },
}

/// An inconsistency in a plan's contents, found before anything runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The target name is not known.
    #[error(transparent)]
    UnknownTarget(#[from] dqc_ir::target::UnknownTarget),
    /// The header's version disagrees with the prefix.
    #[error("the header says format version {header}, the prefix says {prefix}")]
    VersionMismatch {
        /// Version in the header.
        header: u32,
        /// Version in the prefix.
        prefix: u32,
    },
    /// A symbol is declared badly or used without a declaration.
    #[error("symbol `{name}`: {problem}")]
    Symbol {
        /// Symbol name.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// A buffer id that does not exist.
    #[error("{what} refers to buffer {id}, but the program has {count} buffers")]
    NoSuchBuffer {
        /// Who refers to it.
        what: String,
        /// The id.
        id: u32,
        /// Number of buffers.
        count: usize,
    },
    /// A buffer is inconsistent.
    #[error("buffer #{id} `{name}`: {problem}")]
    Buffer {
        /// Buffer id.
        id: u32,
        /// Buffer name.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// An activation that does not fit in the arena.
    #[error(
        "buffer `{name}` at arena offset {offset} with {bytes} bytes (at the symbols' maxima) ends past the arena's {arena} bytes"
    )]
    Arena {
        /// Buffer name.
        name: String,
        /// Offset in the arena.
        offset: u64,
        /// Size at the maxima.
        bytes: u64,
        /// `program.arena_bytes`.
        arena: u64,
    },
    /// A kernel is inconsistent.
    #[error("kernel #{index} `{name}`: {problem}")]
    Kernel {
        /// Kernel index.
        index: usize,
        /// Kernel name.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// An expression node is inconsistent.
    #[error("kernel #{index} `{name}`, expression node {node}: {problem}")]
    Expr {
        /// Kernel index.
        index: usize,
        /// Kernel name.
        name: String,
        /// Node id.
        node: u32,
        /// What is wrong.
        problem: String,
    },
    /// The signature disagrees with the program.
    #[error("signature: {problem}")]
    Signature {
        /// What is wrong.
        problem: String,
    },
    /// A weight is missing or differs from its buffer.
    #[error("weight `{name}`: {problem}")]
    Weight {
        /// Weight name.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// The weights section is not a readable safetensors blob.
    #[error("weights section: {message}")]
    WeightsSection {
        /// What is wrong.
        message: String,
    },
    /// The PTX section is malformed or disagrees with the target.
    #[error("ptx section: {message}")]
    Ptx {
        /// What is wrong.
        message: String,
    },
    /// A cache slot or schedule step is inconsistent.
    #[error("{what}: {problem}")]
    Schedule {
        /// The slot or step.
        what: String,
        /// What is wrong.
        problem: String,
    },
    /// Provenance fields are malformed.
    #[error("provenance: {problem}")]
    Provenance {
        /// What is wrong.
        problem: String,
    },
    /// The file could not be laid out.
    #[error("file layout: {message}")]
    Layout {
        /// What went wrong.
        message: String,
    },
    /// A non-finite constant entry is inconsistent, or a float parameter is not finite.
    #[error("non-finite constant: {problem}")]
    NonFinite {
        /// What is wrong.
        problem: String,
    },
}
