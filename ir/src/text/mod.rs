//! The `.dqc` text format. (to be written)
