//! GPU support that needs no GPU: which architectures a device can run, and whether this
//! build has the CUDA executor.

pub use crate::exec::arch::{DeviceArch, check_arch};

/// Whether this runtime was built with the `cuda` feature (the CUDA executor).
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

/// Check that the CUDA driver loads and initializes on this machine. Without the `cuda`
/// feature this is always [`crate::RuntimeError::UnsupportedTarget`].
pub fn driver_available() -> Result<(), crate::RuntimeError> {
    #[cfg(feature = "cuda")]
    {
        crate::exec::cuda::driver_available()
    }
    #[cfg(not(feature = "cuda"))]
    Err(crate::RuntimeError::UnsupportedTarget {
        target: "any GPU".into(),
    })
}
