//! The panic boundary: every `extern "C"` function runs its body through
//! `catch`, so that a panic becomes a fail-closed answer and a log line
//! instead of aborting an Apache child and every request it serves. The
//! exports are declared with [`export!`], which has no form without it.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Where the last panic on this thread happened, for the log line.
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces Rust's default panic output (raw text on stderr, which lands
/// unformatted in the ErrorLog and could carry a value) with a note of the
/// location only; the boundary logs it through Apache.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        panic::set_hook(Box::new(|info| {
            let location = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
            PANIC_LOCATION.with(|p| *p.borrow_mut() = location);
        }));
    });
}

/// Runs `body`; on a panic returns where it happened.
pub(crate) fn catch<T>(body: impl FnOnce() -> T) -> Result<T, String> {
    install_panic_hook();
    panic::catch_unwind(AssertUnwindSafe(body)).map_err(|payload| {
        // Dropping a payload can itself panic; never let that escape.
        let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(payload)));
        PANIC_LOCATION.with(|p| p.borrow_mut().take()).unwrap_or_else(|| "an unknown place".to_string())
    })
}

/// Declares a function Apache calls by name. Its body runs inside
/// [`catch`]; if it panics, the `on_panic` expression is the answer, with
/// `$location` bound to where the panic happened. That expression is the
/// fail-closed value (500, a config error, null) and must not panic itself.
macro_rules! export {
    (
        $(#[$meta:meta])*
        fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?
        $body:block
        on_panic($location:pat) => $fallback:expr
    ) => {
        $(#[$meta])*
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) $(-> $ret)? {
            match $crate::ffi::boundary::catch(|| $body) {
                Ok(answer) => answer,
                Err($location) => $fallback,
            }
        }
    };
}

pub(crate) use export;
