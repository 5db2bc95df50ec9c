//! The only place raw pointers from Apache are handled: the bindgen output,
//! the `module` struct, the panic boundary and every exported function.

#[allow(warnings, unsafe_op_in_unsafe_fn)]
#[allow(clippy::all, clippy::pedantic)]
pub(crate) mod bindings {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

pub(crate) mod boundary;
mod exports;
pub(crate) mod module;
