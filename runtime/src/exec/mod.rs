//! Executors: the code that runs a validated program on a device.

pub(crate) mod cpu;
