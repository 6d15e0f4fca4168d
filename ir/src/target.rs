//! Compilation targets: the host CPU and NVIDIA GPU architectures, with the figures the
//! cost models use (memory bandwidth and peak throughput per number format).

use std::fmt;

/// What kind of machine a target is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TargetKind {
    /// The host CPU (kernels JIT-compiled by Cranelift when a plan is loaded).
    Cpu,
    /// An NVIDIA GPU of compute capability `major.minor`; `arch_specific` is the `a` suffix
    /// (sm_90a, sm_100a: wgmma / tcgen05 instructions that only that exact arch runs).
    Cuda {
        /// Compute capability major.
        major: u32,
        /// Compute capability minor.
        minor: u32,
        /// The `a` (architecture-specific) variant.
        arch_specific: bool,
    },
}

/// A compilation target and its roofline figures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Target {
    /// Name on the command line (`cpu`, `sm_90a`, …).
    pub name: &'static str,
    /// CPU or GPU architecture.
    pub kind: TargetKind,
    /// Main-memory bandwidth in GB/s.
    pub bandwidth_gbs: f64,
    /// Dense f32 peak in GFLOP/s (tf32 tensor cores on GPUs).
    pub f32_gflops: f64,
    /// Dense bf16/f16 peak in GFLOP/s.
    pub bf16_gflops: f64,
    /// Dense int8 peak in GOP/s.
    pub int8_gops: f64,
    /// Dense fp8 peak in GFLOP/s (0 where the target has no fp8 arithmetic).
    pub fp8_gflops: f64,
    /// Dense fp4 peak in GFLOP/s (0 where the target has no fp4 arithmetic).
    pub fp4_gflops: f64,
}

/// Every target, in the order `--target` lists them. GPU figures are the vendor's dense
/// peaks of a representative part of each architecture (A100, A10, L40S, H100, B200,
/// RTX 5090); the CPU figures describe a modest many-core x86-64 server. Only ratios
/// between kernels matter to the cost model, so the figures need not match the machine.
pub const TARGETS: [Target; 9] = [
    Target {
        name: "cpu",
        kind: TargetKind::Cpu,
        bandwidth_gbs: 50.0,
        f32_gflops: 1_000.0,
        bf16_gflops: 1_000.0,
        int8_gops: 2_000.0,
        fp8_gflops: 0.0,
        fp4_gflops: 0.0,
    },
    cuda(
        "sm_80", 8, 0, false, 2_039.0, 156_000.0, 312_000.0, 624_000.0, 0.0, 0.0,
    ),
    cuda(
        "sm_86", 8, 6, false, 600.0, 31_000.0, 125_000.0, 250_000.0, 0.0, 0.0,
    ),
    cuda(
        "sm_89", 8, 9, false, 864.0, 91_600.0, 362_000.0, 733_000.0, 733_000.0, 0.0,
    ),
    cuda(
        "sm_90",
        9,
        0,
        false,
        3_350.0,
        495_000.0,
        989_000.0,
        1_979_000.0,
        1_979_000.0,
        0.0,
    ),
    cuda(
        "sm_90a",
        9,
        0,
        true,
        3_350.0,
        495_000.0,
        989_000.0,
        1_979_000.0,
        1_979_000.0,
        0.0,
    ),
    cuda(
        "sm_100",
        10,
        0,
        false,
        8_000.0,
        1_100_000.0,
        2_250_000.0,
        4_500_000.0,
        4_500_000.0,
        9_000_000.0,
    ),
    cuda(
        "sm_100a",
        10,
        0,
        true,
        8_000.0,
        1_100_000.0,
        2_250_000.0,
        4_500_000.0,
        4_500_000.0,
        9_000_000.0,
    ),
    cuda(
        "sm_120",
        12,
        0,
        false,
        1_792.0,
        105_000.0,
        209_000.0,
        838_000.0,
        838_000.0,
        1_676_000.0,
    ),
];

#[allow(clippy::too_many_arguments)]
const fn cuda(
    name: &'static str,
    major: u32,
    minor: u32,
    arch_specific: bool,
    bandwidth_gbs: f64,
    f32_gflops: f64,
    bf16_gflops: f64,
    int8_gops: f64,
    fp8_gflops: f64,
    fp4_gflops: f64,
) -> Target {
    Target {
        name,
        kind: TargetKind::Cuda {
            major,
            minor,
            arch_specific,
        },
        bandwidth_gbs,
        f32_gflops,
        bf16_gflops,
        int8_gops,
        fp8_gflops,
        fp4_gflops,
    }
}

/// A `--target` name that is not one of [`TARGETS`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown target `{name}`; valid targets: {}", valid_names().join(", "))]
pub struct UnknownTarget {
    /// The name given.
    pub name: String,
}

/// The names of every target.
pub fn valid_names() -> Vec<&'static str> {
    TARGETS.iter().map(|t| t.name).collect()
}

impl Target {
    /// Look a target up by name.
    pub fn parse(name: &str) -> Result<Target, UnknownTarget> {
        TARGETS
            .iter()
            .find(|t| t.name == name)
            .copied()
            .ok_or_else(|| UnknownTarget {
                name: name.to_string(),
            })
    }

    /// The host CPU target.
    pub fn cpu() -> Target {
        TARGETS[0]
    }

    /// True for the CPU target.
    pub fn is_cpu(&self) -> bool {
        self.kind == TargetKind::Cpu
    }

    /// Seconds a kernel moving `bytes` and doing `flops` f32 operations takes at best
    /// (roofline: the larger of the memory and the compute time).
    pub fn roofline_seconds(&self, bytes: f64, flops: f64, peak_gflops: f64) -> f64 {
        let mem = bytes / (self.bandwidth_gbs * 1e9);
        let compute = if peak_gflops > 0.0 {
            flops / (peak_gflops * 1e9)
        } else {
            f64::INFINITY
        };
        mem.max(compute)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_known_and_unknown() {
        assert_eq!(
            Target::parse("sm_90a").unwrap().kind,
            TargetKind::Cuda {
                major: 9,
                minor: 0,
                arch_specific: true
            }
        );
        assert!(Target::parse("cpu").unwrap().is_cpu());
        let e = Target::parse("sm_75").unwrap_err().to_string();
        assert!(
            e.contains("sm_75") && e.contains("sm_100a") && e.contains("cpu"),
            "{e}"
        );
    }

    #[test]
    fn roofline_takes_the_slower_side() {
        let t = Target::cpu();
        // 50 GB at 50 GB/s = 1 s; 1 GFLOP at 1000 GFLOP/s = 1 ms.
        assert!((t.roofline_seconds(50e9, 1e9, t.f32_gflops) - 1.0).abs() < 1e-12);
    }
}
