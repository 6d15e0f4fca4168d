//! Executors: the code that runs a validated program on a device.

pub(crate) mod arch;
pub(crate) mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(crate) mod device_layout;
