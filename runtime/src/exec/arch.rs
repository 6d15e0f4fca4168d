//! Which GPUs can run a plan compiled for a given architecture.
//!
//! The plan's PTX is JIT-compiled by the driver for the GPU it runs on. PTX for `sm_XY`
//! runs on any GPU of compute capability `X.Y` or newer (PTX is forward compatible), so an
//! `sm_80` plan runs on an H100 (9.0). PTX for an architecture-specific target (`sm_90a`,
//! `sm_100a`) uses instructions only that exact capability has: it runs on `X.Y` only.

use crate::error::RuntimeError;
use dqc_ir::target::{Target, TargetKind};

/// A GPU as the driver describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceArch {
    /// Compute capability major.
    pub major: u32,
    /// Compute capability minor.
    pub minor: u32,
    /// The device name (`NVIDIA H100 80GB HBM3`).
    pub name: String,
}

impl DeviceArch {
    /// The architecture name of this capability (`sm_90`).
    pub fn sm(&self) -> String {
        format!("sm_{}{}", self.major, self.minor)
    }
}

/// Refuse a plan for `target` on `device` when the GPU cannot run its PTX (see the module
/// documentation); the error names both architectures and the device.
pub fn check_arch(target: &Target, device: &DeviceArch) -> Result<(), RuntimeError> {
    let TargetKind::Cuda {
        major,
        minor,
        arch_specific,
    } = target.kind
    else {
        return Err(RuntimeError::NotGpuPlan);
    };
    let dev = (device.major, device.minor);
    let refuse = |reason: String| RuntimeError::ArchMismatch {
        plan: target.name.to_string(),
        device: device.sm(),
        name: device.name.clone(),
        reason,
    };
    if arch_specific {
        if dev != (major, minor) {
            return Err(refuse(format!(
                "{} code runs only on compute capability {major}.{minor} exactly; compile for \
                 sm_{}{} or an older architecture",
                target.name, device.major, device.minor
            )));
        }
    } else if dev < (major, minor) {
        return Err(refuse(format!(
            "PTX for {} needs compute capability {major}.{minor} or newer; compile for \
             sm_{}{} or an older architecture",
            target.name, device.major, device.minor
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(major: u32, minor: u32) -> DeviceArch {
        DeviceArch {
            major,
            minor,
            name: format!("Test GPU {major}.{minor}"),
        }
    }

    fn t(name: &str) -> Target {
        Target::parse(name).unwrap()
    }

    #[test]
    fn same_architecture_runs() {
        check_arch(&t("sm_90"), &dev(9, 0)).unwrap();
        check_arch(&t("sm_90a"), &dev(9, 0)).unwrap();
        check_arch(&t("sm_100"), &dev(10, 0)).unwrap();
        check_arch(&t("sm_100a"), &dev(10, 0)).unwrap();
        check_arch(&t("sm_120"), &dev(12, 0)).unwrap();
    }

    #[test]
    fn older_ptx_jit_compiles_on_newer_gpus() {
        check_arch(&t("sm_80"), &dev(9, 0)).unwrap();
        check_arch(&t("sm_86"), &dev(8, 9)).unwrap();
        check_arch(&t("sm_90"), &dev(10, 0)).unwrap();
        check_arch(&t("sm_100"), &dev(12, 0)).unwrap();
    }

    #[test]
    fn newer_plans_are_refused_naming_both_architectures() {
        let e = check_arch(
            &t("sm_100"),
            &DeviceArch {
                major: 9,
                minor: 0,
                name: "NVIDIA H100 80GB HBM3".into(),
            },
        )
        .unwrap_err();
        assert!(matches!(e, RuntimeError::ArchMismatch { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "plan targets sm_100 but the GPU is sm_90 (NVIDIA H100 80GB HBM3): PTX for sm_100 \
             needs compute capability 10.0 or newer; compile for sm_90 or an older architecture"
        );
        let e = check_arch(&t("sm_89"), &dev(8, 6)).unwrap_err().to_string();
        assert!(
            e.starts_with("plan targets sm_89 but the GPU is sm_86"),
            "{e}"
        );
    }

    #[test]
    fn arch_specific_plans_need_the_exact_capability() {
        for (plan, major, minor) in [("sm_90a", 10, 0), ("sm_90a", 8, 0), ("sm_100a", 12, 0)] {
            let e = check_arch(&t(plan), &dev(major, minor))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!(
                    "plan targets {plan} but the GPU is sm_{major}{minor}"
                )) && e.contains("exactly"),
                "{e}"
            );
        }
        let e = check_arch(&t("sm_100a"), &dev(9, 0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sm_100a") && e.contains("sm_90"), "{e}");
    }

    #[test]
    fn cpu_plans_are_not_gpu_plans() {
        let e = check_arch(&t("cpu"), &dev(9, 0)).unwrap_err();
        assert!(matches!(e, RuntimeError::NotGpuPlan), "{e}");
    }
}
