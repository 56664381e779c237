//! Shared setup for the `cli_*` end-to-end tests: the demo app of
//! `unitgate_tests::demo`.
#![allow(unused_imports)] // each test file uses a different subset

pub use unitgate_tests::demo::*;
