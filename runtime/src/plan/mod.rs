//! Plan files (format version 1): writing, loading and validating them.
//!
//! A plan is one file: a fixed prefix (magic, version, header length and checksum), a JSON
//! header ([`PlanHeader`]) and checksummed sections (`weights`: safetensors; `ptx`: JSON
//! list of [`PtxModule`]). `docs/plan-format.md` describes the bytes. Loading checks every
//! byte and every id before anything can run; a plan that loads is safe to execute as far
//! as the format can tell.

mod describe;
mod error;
mod floats;
mod header;
mod layout;
mod validate;
mod weights;
mod write;

pub use describe::human_bytes;
pub use error::{PlanError, ValidationError};
pub use header::{
    CacheSlot, FORMAT_VERSION, NonFiniteConst, PlanHeader, PlanParts, PrecisionEntry, Provenance,
    PtxModule, ScheduleStep, SectionEntry, Signature, TensorSig,
};
pub use layout::{MAGIC, PREFIX_LEN, PTX, SECTION_ALIGN, WEIGHTS, sha256_hex};
pub use write::{plan_bytes, write_plan};

use crate::align::{AlignedBuf, is_aligned};
use dqc_codegen::spec::Program;
use dqc_ir::tensor::Storage;
use dqc_ir::{DType, Target, Tensor};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The bytes of a loaded plan file.
enum Source {
    Mapped(Arc<memmap2::Mmap>),
    Owned(AlignedBuf),
}

impl Source {
    fn bytes(&self) -> &[u8] {
        match self {
            Source::Mapped(m) => m,
            Source::Owned(b) => b.as_slice(),
        }
    }

    /// Let go of the resident pages of bytes `offset..offset + len` of a mapped file (the
    /// whole pages inside the range); nothing for a plan held in memory.
    fn release(&self, offset: usize, len: usize) {
        if let Source::Mapped(map) = self {
            release_pages(map, offset, len);
        }
    }
}

/// Drop the whole pages inside bytes `offset..offset + len` of `map` from this process's
/// memory (`madvise(MADV_DONTNEED)`). The mapping is a shared, read-only map of the plan
/// file, so this only unmaps them: the next read faults the same bytes back in from the
/// page cache or the file. Best effort: where the call fails or does not exist, nothing
/// changes.
fn release_pages(map: &memmap2::Mmap, offset: usize, len: usize) {
    #[cfg(unix)]
    {
        // SAFETY: sysconf has no preconditions.
        let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
            p if p > 0 => p as usize,
            _ => return,
        };
        let start = offset.next_multiple_of(page);
        let end = offset.saturating_add(len).min(map.len()) / page * page;
        if end > start {
            // SAFETY: `Mmap::map` makes a shared read-only file mapping; dropping its pages
            // leaves the bytes as they were (they come back from the file, which the plan's
            // contract says is not modified while the plan is alive). No reference into the
            // mapping observes a change.
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
            };
        }
    }
    #[cfg(not(unix))]
    let _ = (map, offset, len);
}

/// Where one weight's bytes are.
enum WeightBytes {
    /// At this offset of the plan file, 64-byte aligned.
    InPlan { offset: usize, len: usize },
    /// Copied into an aligned allocation (the file's copy was not aligned).
    Copied(AlignedBuf),
}

struct WeightData {
    dtype: DType,
    shape: Vec<u64>,
    bytes: WeightBytes,
}

struct Inner {
    path: PathBuf,
    source: Source,
    header: PlanHeader,
    target: Target,
    weights: BTreeMap<String, WeightData>,
    ptx: Vec<PtxModule>,
}

/// A loaded, fully validated plan. Cloning is cheap (shared).
#[derive(Clone)]
pub struct Plan {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("path", &self.inner.path)
            .field("target", &self.inner.target.name)
            .field("kernels", &self.inner.header.program.kernels.len())
            .finish()
    }
}

impl Plan {
    /// Map and validate the plan at `path`.
    ///
    /// Refused, in this order (see [`PlanError`]): unreadable file, not a plan (magic),
    /// another format version, truncation (prefix, header or a section; the error gives
    /// the expected and actual size), header checksum, malformed header JSON, bad section
    /// table or padding, trailing bytes, section checksums, unknown target, an invalid
    /// program or signature, weights missing or differing from their buffers, PTX modules
    /// for another target. The file must not be modified while the plan is alive (it is
    /// memory-mapped; [`write_plan`] replaces files by renaming, which is safe).
    pub fn load(path: impl AsRef<Path>) -> Result<Plan, PlanError> {
        let path = path.as_ref();
        let io = |source| PlanError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let source = if len == 0 {
            Source::Owned(AlignedBuf::zeroed(0).map_err(|e| io(std::io::Error::other(e)))?)
        } else {
            // SAFETY: read-only mapping; the contract above asks callers not to modify the
            // file while the plan is alive.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
            Source::Mapped(Arc::new(map))
        };
        Plan::from_source(path.to_path_buf(), source)
    }

    /// Like [`Plan::load`], and refuse a plan compiled for another target than `target`.
    pub fn load_for_target(path: impl AsRef<Path>, target: &Target) -> Result<Plan, PlanError> {
        let plan = Plan::load(path)?;
        if plan.inner.target.name != target.name {
            return Err(PlanError::WrongTarget {
                path: plan.inner.path.clone(),
                plan: plan.inner.target.name.to_string(),
                wanted: target.name.to_string(),
            });
        }
        Ok(plan)
    }

    /// Validate a plan held in memory (copied into an aligned buffer). `name` stands for
    /// the path in error messages.
    pub fn from_bytes(name: impl Into<PathBuf>, bytes: &[u8]) -> Result<Plan, PlanError> {
        let path = name.into();
        let buf = AlignedBuf::copy_of(bytes).map_err(|e| PlanError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        Plan::from_source(path, Source::Owned(buf))
    }

    fn from_source(path: PathBuf, source: Source) -> Result<Plan, PlanError> {
        let invalid = |source| PlanError::Invalid {
            path: path.clone(),
            source,
        };
        let bytes = source.bytes();
        let parsed = layout::parse(&path, bytes)?;
        let mut header = parsed.header;
        floats::restore(&mut header.program, &header.nonfinite).map_err(invalid)?;
        let target = validate::check_header(&header).map_err(invalid)?;
        let (w_off, w_len) = parsed.weights;
        let section = &bytes[w_off..w_off + w_len];
        let entries = weights::decode(section).map_err(invalid)?;
        weights::check_against_program(&header.program, &entries).map_err(invalid)?;
        let (p_off, p_len) = parsed.ptx;
        let ptx: Vec<PtxModule> =
            serde_json::from_slice(&bytes[p_off..p_off + p_len]).map_err(|e| {
                invalid(ValidationError::Ptx {
                    message: e.to_string(),
                })
            })?;
        check_ptx(&target, &ptx).map_err(invalid)?;
        let mut wmap = BTreeMap::new();
        for (name, e) in entries {
            let offset = w_off + e.offset;
            let in_file = &bytes[offset..offset + e.len];
            let wb = if is_aligned(in_file.as_ptr()) {
                WeightBytes::InPlan { offset, len: e.len }
            } else {
                WeightBytes::Copied(AlignedBuf::copy_of(in_file).map_err(|err| PlanError::Io {
                    path: path.clone(),
                    source: std::io::Error::other(err),
                })?)
            };
            wmap.insert(
                name,
                WeightData {
                    dtype: e.dtype,
                    shape: e.shape,
                    bytes: wb,
                },
            );
        }
        // Validation read every weight byte (the section checksum); nothing needs them
        // resident until a kernel reads them, and kernels that keep their own copy (packed
        // GEMM panels) should not hold a second one through the mapping.
        source.release(w_off, w_len);
        Ok(Plan {
            inner: Arc::new(Inner {
                path,
                source,
                header,
                target,
                weights: wmap,
                ptx,
            }),
        })
    }

    /// The file this plan was loaded from.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The target it was compiled for.
    pub fn target(&self) -> Target {
        self.inner.target
    }

    /// The whole header (with non-finite constants restored in the program).
    pub fn header(&self) -> &PlanHeader {
        &self.inner.header
    }

    /// The lowered program.
    pub fn program(&self) -> &Program {
        &self.inner.header.program
    }

    /// Input and output names, dtypes and shapes.
    pub fn signature(&self) -> &Signature {
        &self.inner.header.signature
    }

    /// Where the plan came from.
    pub fn provenance(&self) -> &Provenance {
        &self.inner.header.provenance
    }

    /// The precision table.
    pub fn precision(&self) -> &[PrecisionEntry] {
        &self.inner.header.precision
    }

    /// The PTX modules (empty for `cpu` plans).
    pub fn ptx_modules(&self) -> &[PtxModule] {
        &self.inner.ptx
    }

    /// Names of the stored weights, sorted.
    pub fn weight_names(&self) -> impl Iterator<Item = &str> {
        self.inner.weights.keys().map(String::as_str)
    }

    /// The bytes of weight `name`, starting on a 64-byte boundary: a view of the mapped
    /// file where it is aligned there, else an aligned copy made at load time.
    pub fn weight_bytes(&self, name: &str) -> Option<&[u8]> {
        let w = self.inner.weights.get(name)?;
        match &w.bytes {
            WeightBytes::InPlan { offset, len } => {
                self.inner.source.bytes().get(*offset..*offset + *len)
            }
            WeightBytes::Copied(b) => Some(b.as_slice()),
        }
    }

    /// Weight `name` as a tensor; shares the mapped file when the plan was mapped,
    /// otherwise copies.
    pub fn weight(&self, name: &str) -> Option<Tensor> {
        let w = self.inner.weights.get(name)?;
        let storage = match (&w.bytes, &self.inner.source) {
            (WeightBytes::InPlan { offset, len }, Source::Mapped(map)) => Storage::Mapped {
                map: Arc::clone(map),
                offset: *offset,
                len: *len,
            },
            _ => Storage::Owned(Arc::from(self.weight_bytes(name)?)),
        };
        Tensor::from_storage(w.dtype, w.shape.clone(), storage).ok()
    }

    /// Whether the plan is a memory-mapped file (not bytes held in memory).
    pub(crate) fn is_mapped(&self) -> bool {
        matches!(self.inner.source, Source::Mapped(_))
    }

    /// For the CPU executor ([`CpuProgram::set_weight_release`]): when the plan is a
    /// mapped file, a callback that drops the pages of a weight once a kernel has copied
    /// it (addresses outside the mapping, such as weights copied at load time, are left
    /// alone); `None` for a plan held in memory, whose bytes cannot be read back.
    ///
    /// [`CpuProgram::set_weight_release`]: dqc_codegen::cpu::CpuProgram::set_weight_release
    pub(crate) fn weight_release(&self) -> Option<dqc_codegen::cpu::WeightRelease> {
        let Source::Mapped(map) = &self.inner.source else {
            return None;
        };
        let map = Arc::clone(map);
        Some(Arc::new(move |ptr: *const u8, len: usize| {
            let (base, p) = (map.as_ptr() as usize, ptr as usize);
            if p >= base && p - base < map.len() {
                release_pages(&map, p - base, len);
            }
        }))
    }

    /// Total bytes of the stored weights.
    pub fn weights_bytes_total(&self) -> u64 {
        self.inner
            .weights
            .keys()
            .filter_map(|n| self.weight_bytes(n))
            .map(|b| b.len() as u64)
            .sum()
    }
}

/// PTX modules must be absent from `cpu` plans and name the plan's target otherwise.
pub(crate) fn check_ptx(target: &Target, ptx: &[PtxModule]) -> Result<(), ValidationError> {
    if target.is_cpu() && !ptx.is_empty() {
        return Err(ValidationError::Ptx {
            message: format!("a `cpu` plan carries {} PTX modules", ptx.len()),
        });
    }
    for m in ptx {
        if m.target != target.name {
            return Err(ValidationError::Ptx {
                message: format!(
                    "module `{}` is for `{}`, the plan is for `{}`",
                    m.name, m.target, target.name
                ),
            });
        }
    }
    Ok(())
}
