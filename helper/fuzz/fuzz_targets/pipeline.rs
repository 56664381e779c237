//! Input: policy text, a NUL byte, then argv elements separated by NUL;
//! see `unitgate_helper::fuzzing::check_judging`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| unitgate_helper::fuzzing::check_judging(data));
