//! A process-wide SIGBUS handler, so that a fault on device memory becomes a
//! test result instead of killing the test binary.
//!
//! - [`Mode::Report`] (the default): the fault is unexpected. The handler counts
//!   it and puts a zero-filled anonymous page over the faulting page, so the
//!   access completes (reading zeros) and the test reports the count. The
//!   mapping is damaged at that page; the test has failed anyway.
//! - [`Mode::Retry`]: the fault is expected while a region is inactive (during
//!   a reset). The handler counts it, sleeps 100 µs and returns, so the access
//!   is retried until the region is active again. [`give_up`] turns the
//!   remaining retries into reports, for a region that never comes back.
//!
//! Everything the handler does is async-signal-safe: atomics, `nanosleep`,
//! `mmap` (a plain system call) and `signal`.

use std::io;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};

/// What the handler does with a SIGBUS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Count it as unexpected and patch the page so the access completes.
    Report,
    /// Count it, sleep 100 µs and let the access be retried.
    Retry,
}

const REPORT: u8 = 0;
const RETRY: u8 = 1;

static MODE: AtomicU8 = AtomicU8::new(REPORT);
static GIVE_UP: AtomicBool = AtomicBool::new(false);
static UNEXPECTED: AtomicU64 = AtomicU64::new(0);
static RETRIED: AtomicU64 = AtomicU64::new(0);
static LAST_ADDRESS: AtomicUsize = AtomicUsize::new(0);
static PAGE: AtomicUsize = AtomicUsize::new(4096);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// How long a retried access waits before faulting again.
const RETRY_DELAY_NS: libc::c_long = 100_000;

extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t for the
    // signal being handled; SIGBUS fills in si_addr.
    let addr = unsafe { (*info).si_addr() } as usize;
    LAST_ADDRESS.store(addr, Ordering::Relaxed);
    if MODE.load(Ordering::Relaxed) == RETRY && !GIVE_UP.load(Ordering::Relaxed) {
        RETRIED.fetch_add(1, Ordering::Relaxed);
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: RETRY_DELAY_NS,
        };
        // SAFETY: nanosleep is async-signal-safe; `ts` is a live local and the
        // remainder pointer may be NULL.
        unsafe { libc::nanosleep(&ts, ptr::null_mut()) };
        return;
    }
    UNEXPECTED.fetch_add(1, Ordering::Relaxed);
    let page_size = PAGE.load(Ordering::Relaxed);
    let page = addr & !(page_size - 1);
    let patched = page != 0 && {
        // SAFETY: replaces only the page that just faulted, which belongs to
        // a device or file mapping the tests access solely through volatile
        // raw-pointer accesses (`mmap::Mapping`), never through references.
        let p = unsafe {
            libc::mmap(
                page as *mut libc::c_void,
                page_size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        p != libc::MAP_FAILED
    };
    if !patched {
        // Nothing to patch: let the repeated fault end the process as it
        // would have without this handler.
        // SAFETY: signal() is async-signal-safe.
        unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
    }
}

/// Installs the handler (once; later calls do nothing) in [`Mode::Report`].
pub fn install() -> io::Result<()> {
    if INSTALLED.load(Ordering::Acquire) {
        return Ok(());
    }
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if page > 0 {
        PAGE.store(page as usize, Ordering::Relaxed);
    }
    let mut sa = MaybeUninit::<libc::sigaction>::zeroed();
    let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = on_sigbus;
    // SAFETY: zeroed is a valid `sigaction` (plain integers and a signal mask);
    // we set the handler and flags and empty the mask through the pointer.
    let sa = unsafe {
        let p = sa.as_mut_ptr();
        (*p).sa_sigaction = handler as libc::sighandler_t;
        (*p).sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigemptyset(&mut (*p).sa_mask);
        sa.assume_init()
    };
    // SAFETY: `sa` is a fully initialised sigaction whose handler only does
    // async-signal-safe work; the old action is not requested.
    let r = unsafe { libc::sigaction(libc::SIGBUS, &sa, ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    INSTALLED.store(true, Ordering::Release);
    Ok(())
}

/// Whether [`install`] succeeded.
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Acquire)
}

/// Sets what the handler does; entering [`Mode::Retry`] cancels [`give_up`].
pub fn set_mode(mode: Mode) {
    if mode == Mode::Retry {
        GIVE_UP.store(false, Ordering::Relaxed);
    }
    MODE.store(
        match mode {
            Mode::Report => REPORT,
            Mode::Retry => RETRY,
        },
        Ordering::SeqCst,
    );
}

/// The current mode.
pub fn mode() -> Mode {
    if MODE.load(Ordering::SeqCst) == RETRY {
        Mode::Retry
    } else {
        Mode::Report
    }
}

/// Makes faults that are being retried be reported (and patched) instead, so
/// accesses stuck on a region that stays inactive complete.
pub fn give_up() {
    GIVE_UP.store(true, Ordering::SeqCst);
}

/// Faults handled as unexpected since the start.
pub fn unexpected() -> u64 {
    UNEXPECTED.load(Ordering::Relaxed)
}

/// Faults retried since the start.
pub fn retried() -> u64 {
    RETRIED.load(Ordering::Relaxed)
}

/// The address of the last fault.
pub fn last_address() -> usize {
    LAST_ADDRESS.load(Ordering::Relaxed)
}

/// Puts the handler in [`Mode::Retry`] until dropped, then back in [`Mode::Report`].
#[derive(Debug)]
pub struct RetryGuard(());

impl RetryGuard {
    /// Enters [`Mode::Retry`].
    pub fn new() -> Self {
        set_mode(Mode::Retry);
        RetryGuard(())
    }
}

impl Default for RetryGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RetryGuard {
    fn drop(&mut self) {
        set_mode(Mode::Report);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mmap::Mapping;
    use std::fs::File;
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileExt;
    use std::sync::Arc;
    use std::thread;
    use std::time::{Duration, Instant};

    fn scratch(name: &str, len: u64) -> File {
        let path =
            std::env::temp_dir().join(format!("cxlvfio-sigbus-{name}-{}", std::process::id()));
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f.set_len(len).unwrap();
        f
    }

    fn wait_for(cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out");
            thread::sleep(Duration::from_millis(1));
        }
    }

    // One test: the handler and its counters are process-wide.
    #[test]
    fn report_retry_and_give_up() {
        install().unwrap();
        install().unwrap();
        assert!(installed());
        assert_eq!(mode(), Mode::Report);

        // Report: the access completes with zeros and is counted.
        let f = scratch("report", 8192);
        let m = Mapping::shared(f.as_fd(), 0, 8192).unwrap();
        f.write_all_at(&7u64.to_le_bytes(), 4096).unwrap();
        assert_eq!(m.read_u64(4096), 7);
        f.set_len(4096).unwrap();
        let before = unexpected();
        assert_eq!(m.read_u64(4096 + 16), 0);
        assert_eq!(unexpected(), before + 1);
        assert_eq!(last_address(), m.addr() + 4096 + 16);
        drop(m);

        // Retry: the access waits until the page is backed again.
        let f = scratch("retry", 4096);
        let m = Arc::new(Mapping::shared(f.as_fd(), 0, 8192).unwrap());
        let guard = RetryGuard::new();
        assert_eq!(mode(), Mode::Retry);
        let retried_before = retried();
        let reader = {
            let m = Arc::clone(&m);
            thread::spawn(move || m.read_u64(4096 + 8))
        };
        wait_for(|| retried() > retried_before + 2);
        // Extend the file by writing the value itself: the page becomes
        // reachable only once it holds the data (a set_len first would let
        // the retried read see the zeros in between).
        f.write_all_at(&0x5a5au64.to_le_bytes(), 4096 + 8).unwrap();
        assert_eq!(reader.join().unwrap(), 0x5a5a);
        assert_eq!(unexpected(), before + 1);

        // Give up: a stuck access is patched and completes.
        f.set_len(4096).unwrap();
        let stuck = {
            let m = Arc::clone(&m);
            thread::spawn(move || m.read_u64(4096 + 24))
        };
        let now = retried();
        wait_for(|| retried() > now + 2);
        give_up();
        assert_eq!(stuck.join().unwrap(), 0);
        assert_eq!(unexpected(), before + 2);
        drop(guard);
        assert_eq!(mode(), Mode::Report);
    }
}
