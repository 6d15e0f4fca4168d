//! Lowering `ir::Graph` → `spec::Program` (being written).
