#![allow(dead_code)]

pub mod process;
pub mod slapd;
pub mod smtp;
