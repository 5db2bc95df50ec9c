//! The top layer: every function Apache calls (`exports`), the `module`
//! struct that names them, and the panic boundary they all run in. Nothing
//! below imports this module.

pub(crate) mod boundary;
mod exports;
mod module;
