//! The Cranelift backend (being written).
