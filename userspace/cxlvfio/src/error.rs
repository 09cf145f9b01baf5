//! `io::Error` with context that still exposes the original errno.
//!
//! Callers (the smoke suite) need both a readable message ("which ioctl failed on
//! which device") and the exact errno (e.g. `VFIO_DEVICE_RESET` must fail with
//! `EINVAL` when the device cannot be reset), so the context wraps the source
//! error instead of flattening it into a string.

use std::error::Error;
use std::fmt;
use std::io;

/// An error with a description of the operation that failed.
#[derive(Debug)]
pub struct Context {
    what: String,
    source: io::Error,
}

impl Context {
    /// What was being done when the error happened.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The underlying error.
    pub fn inner(&self) -> &io::Error {
        &self.source
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl Error for Context {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

/// Wraps `err` with a description of the failed operation, keeping its kind.
pub fn with_context(err: io::Error, what: impl Into<String>) -> io::Error {
    io::Error::new(
        err.kind(),
        Context {
            what: what.into(),
            source: err,
        },
    )
}

/// Extension trait to add context to `io::Result`s.
pub trait ResultExt<T> {
    /// Adds a description of the operation to the error, see [`with_context`].
    fn context(self, what: impl FnOnce() -> String) -> io::Result<T>;
}

impl<T> ResultExt<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> io::Result<T> {
        self.map_err(|e| with_context(e, what()))
    }
}

/// The errno behind `err`, looking through any number of [`Context`] layers.
pub fn raw_os_error(err: &io::Error) -> Option<i32> {
    if let Some(code) = err.raw_os_error() {
        return Some(code);
    }
    let ctx = err.get_ref()?.downcast_ref::<Context>()?;
    raw_os_error(&ctx.source)
}

/// Builds an `io::Error` of `kind` from a message.
pub fn other(kind: io::ErrorKind, msg: impl Into<String>) -> io::Error {
    io::Error::new(kind, msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_errno_and_kind() {
        let base = io::Error::from_raw_os_error(libc::EINVAL);
        let e = with_context(base, "VFIO_DEVICE_RESET on 0000:00:01.0");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(e.raw_os_error(), None);
        assert_eq!(raw_os_error(&e), Some(libc::EINVAL));
        let msg = e.to_string();
        assert!(
            msg.starts_with("VFIO_DEVICE_RESET on 0000:00:01.0: "),
            "{msg}"
        );
        // Nested context still finds the errno.
        let e2 = with_context(e, "outer");
        assert_eq!(raw_os_error(&e2), Some(libc::EINVAL));
        assert!(e2.to_string().starts_with("outer: VFIO_DEVICE_RESET"));
    }

    #[test]
    fn plain_errors_have_no_errno() {
        let e = other(io::ErrorKind::InvalidData, "bad");
        assert_eq!(raw_os_error(&e), None);
        let r: io::Result<()> = Err(io::Error::from_raw_os_error(libc::ENOENT));
        let e = r.context(|| "open /dev/vfio/3".to_string()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(raw_os_error(&e), Some(libc::ENOENT));
    }
}
