//! The `dqc` package: the command-line compiler (`src/main.rs`) and, as a library, the
//! compile driver it shares with the end-to-end tests.
#![warn(missing_docs)]

pub mod driver;
