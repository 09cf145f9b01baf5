//! Memory mappings of a device fd, the volatile accesses tests make through
//! them, and the page-fault counter that shows how the kernel populated them.
//!
//! Device memory is only ever touched through volatile reads and writes of
//! naturally aligned units via raw pointers: the kernel may zap or replace the
//! pages at any time (reset, low power), so no Rust reference into a mapping
//! is ever created.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr;
use std::thread;
use std::time::{Duration, Instant};

/// The page size the tests reason about.
pub const PAGE_SIZE: usize = 4096;

/// A memory mapping, unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: `Mapping` owns the address range; all accesses are volatile reads
// and writes through raw pointers (no references are handed out), so sending
// it to another thread moves nothing that is tied to the creating thread.
unsafe impl Send for Mapping {}
// SAFETY: as above; concurrent volatile accesses to memory shared with a
// device are what the tests exercise and create no Rust aliasing.
unsafe impl Sync for Mapping {}

/// How a forked child that touched a mapping ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    /// It exited normally with this status (0: the access worked).
    Exited(i32),
    /// A signal killed it.
    Signaled(i32),
    /// It did not end in time and was killed.
    TimedOut,
}

fn off_t(offset: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))
}

impl Mapping {
    /// `mmap(NULL, len, prot, flags, fd, offset)`; `flags` must not contain `MAP_FIXED`.
    pub fn map(
        fd: BorrowedFd<'_>,
        offset: u64,
        len: usize,
        prot: libc::c_int,
        flags: libc::c_int,
    ) -> io::Result<Mapping> {
        if flags & (libc::MAP_FIXED | libc::MAP_FIXED_NOREPLACE) != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "Mapping::map does not place mappings at fixed addresses",
            ));
        }
        let off = off_t(offset)?;
        // SAFETY: a NULL hint without MAP_FIXED makes the kernel choose an
        // unused range, so no existing mapping (and no Rust object) is
        // replaced; the fd is open for the call.
        let p = unsafe { libc::mmap(ptr::null_mut(), len, prot, flags, fd.as_raw_fd(), off) };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr: p.cast(), len })
    }

    /// A private, anonymous read/write mapping of `len` bytes (zero-filled
    /// pages, faulted in on first touch): ordinary process memory, e.g. a
    /// buffer to map for a device's DMA.
    pub fn anonymous(len: usize) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an anonymous mapping of 0 bytes",
            ));
        }
        // SAFETY: a NULL hint without MAP_FIXED makes the kernel choose an
        // unused range, so no existing mapping (and no Rust object) is
        // replaced; an anonymous mapping takes no fd.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr: p.cast(), len })
    }

    /// A shared read/write mapping of `len` bytes at `offset` of `fd`.
    pub fn shared(fd: BorrowedFd<'_>, offset: u64, len: usize) -> io::Result<Mapping> {
        Self::map(
            fd,
            offset,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
        )
    }

    /// A shared read/write mapping whose address is `skew` bytes past a
    /// multiple of `align` (a power of two; `skew` a multiple of the page
    /// size, below `align`). With `skew` 0 the kernel can use huge page table
    /// entries where the physical address is aligned too; with a page-sized
    /// skew it never can.
    pub fn shared_aligned(
        fd: BorrowedFd<'_>,
        offset: u64,
        len: usize,
        align: usize,
        skew: usize,
    ) -> io::Result<Mapping> {
        if !align.is_power_of_two()
            || align < PAGE_SIZE
            || !skew.is_multiple_of(PAGE_SIZE)
            || skew >= align
            || len == 0
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad alignment {align:#x} / skew {skew:#x} / length {len:#x}"),
            ));
        }
        let off = off_t(offset)?;
        let total = len
            .checked_add(align)
            .and_then(|t| t.checked_add(skew))
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        // Reserve address space first so the aligned range cannot be taken by
        // anyone else between choosing it and mapping the device there.
        // SAFETY: NULL hint without MAP_FIXED: a fresh range nobody else uses.
        let res = unsafe {
            libc::mmap(
                ptr::null_mut(),
                total,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if res == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = res as usize;
        let at = ((base + align - 1) & !(align - 1)) + skew;
        // SAFETY: [at, at + len) lies inside the reservation just made, which
        // only this function knows about; MAP_FIXED replaces that part of it.
        let p = unsafe {
            libc::mmap(
                at as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                fd.as_raw_fd(),
                off,
            )
        };
        if p == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            // SAFETY: the whole reservation is ours (a failed MAP_FIXED may
            // have left a hole in it, which munmap accepts).
            unsafe { libc::munmap(res, total) };
            return Err(e);
        }
        let end = at + len;
        // SAFETY: both ranges are the unused head and tail of our own
        // reservation, outside the device mapping.
        unsafe {
            if at > base {
                libc::munmap(res, at - base);
            }
            if base + total > end {
                libc::munmap(end as *mut libc::c_void, base + total - end);
            }
        }
        Ok(Mapping {
            ptr: at as *mut u8,
            len,
        })
    }

    /// The start address.
    pub fn addr(&self) -> usize {
        self.ptr as usize
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Pointer to byte `off`, after checking that `size` bytes from there are mapped.
    fn at(&self, off: usize, size: usize) -> *mut u8 {
        assert!(
            off.checked_add(size).is_some_and(|end| end <= self.len),
            "access of {size} bytes at {off:#x} outside a mapping of {:#x} bytes",
            self.len
        );
        self.ptr.wrapping_add(off)
    }

    /// Volatile 8-byte read at `off` (a multiple of 8).
    pub fn read_u64(&self, off: usize) -> u64 {
        assert_eq!(off % 8, 0, "unaligned 8-byte read at {off:#x}");
        let p = self.at(off, 8).cast::<u64>();
        // SAFETY: `p` is inside the mapping (checked by `at`) and 8-aligned
        // (the mapping is page aligned); the mapping lives as long as `self`.
        unsafe { p.read_volatile() }
    }

    /// Volatile 8-byte write at `off` (a multiple of 8).
    pub fn write_u64(&self, off: usize, value: u64) {
        assert_eq!(off % 8, 0, "unaligned 8-byte write at {off:#x}");
        let p = self.at(off, 8).cast::<u64>();
        // SAFETY: as in `read_u64`; the mapping is writable (or the kernel
        // raises a fault, not memory corruption).
        unsafe { p.write_volatile(value) }
    }

    /// Volatile 4-byte read at `off` (a multiple of 4): one 32-bit load, as
    /// device registers need.
    pub fn read_u32(&self, off: usize) -> u32 {
        assert_eq!(off % 4, 0, "unaligned 4-byte read at {off:#x}");
        let p = self.at(off, 4).cast::<u32>();
        // SAFETY: `p` is inside the mapping (checked by `at`) and 4-aligned
        // (the mapping is page aligned); the mapping lives as long as `self`.
        unsafe { p.read_volatile() }
    }

    /// Volatile 4-byte write at `off` (a multiple of 4): one 32-bit store.
    pub fn write_u32(&self, off: usize, value: u32) {
        assert_eq!(off % 4, 0, "unaligned 4-byte write at {off:#x}");
        let p = self.at(off, 4).cast::<u32>();
        // SAFETY: as in `read_u32`; the mapping is writable (or the kernel
        // raises a fault, not memory corruption).
        unsafe { p.write_volatile(value) }
    }

    /// Volatile 2-byte read at `off` (a multiple of 2).
    pub fn read_u16(&self, off: usize) -> u16 {
        assert_eq!(off % 2, 0, "unaligned 2-byte read at {off:#x}");
        let p = self.at(off, 2).cast::<u16>();
        // SAFETY: `p` is inside the mapping (checked by `at`) and 2-aligned.
        unsafe { p.read_volatile() }
    }

    /// Volatile 2-byte write at `off` (a multiple of 2).
    pub fn write_u16(&self, off: usize, value: u16) {
        assert_eq!(off % 2, 0, "unaligned 2-byte write at {off:#x}");
        let p = self.at(off, 2).cast::<u16>();
        // SAFETY: as in `read_u16`.
        unsafe { p.write_volatile(value) }
    }

    /// Volatile 1-byte read at `off`.
    pub fn read_u8(&self, off: usize) -> u8 {
        let p = self.at(off, 1);
        // SAFETY: `p` is inside the mapping (checked by `at`).
        unsafe { p.read_volatile() }
    }

    /// Volatile 1-byte write at `off`.
    pub fn write_u8(&self, off: usize, value: u8) {
        let p = self.at(off, 1);
        // SAFETY: `p` is inside the mapping (checked by `at`).
        unsafe { p.write_volatile(value) }
    }

    /// Reads `buf.len()` bytes at `off`: single bytes up to 8-byte alignment,
    /// then 8-byte words, then single bytes.
    pub fn read_bytes(&self, off: usize, buf: &mut [u8]) {
        self.at(off, buf.len());
        let mut i = 0;
        while i < buf.len() {
            let pos = off + i;
            if pos.is_multiple_of(8) && buf.len() - i >= 8 {
                buf[i..i + 8].copy_from_slice(&self.read_u64(pos).to_le_bytes());
                i += 8;
            } else {
                buf[i] = self.read_u8(pos);
                i += 1;
            }
        }
    }

    /// `len` bytes at `off`, read as [`Mapping::read_bytes`] does.
    pub fn read_vec(&self, off: usize, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.read_bytes(off, &mut v);
        v
    }

    /// Writes `data` at `off` with volatile writes (bytes, then 8-byte words
    /// where aligned, then bytes).
    pub fn write_bytes(&self, off: usize, data: &[u8]) {
        self.at(off, data.len());
        let mut i = 0;
        while i < data.len() {
            let pos = off + i;
            if pos.is_multiple_of(8) && data.len() - i >= 8 {
                let word: [u8; 8] = data[i..i + 8].try_into().expect("8 bytes");
                self.write_u64(pos, u64::from_le_bytes(word));
                i += 8;
            } else {
                self.write_u8(pos, data[i]);
                i += 1;
            }
        }
    }

    /// Forks a child that reads the byte at `off` and exits with status 0;
    /// returns how the child ended. A fault the kernel answers with SIGBUS
    /// kills the child instead of this process. The child does not dump core.
    pub fn probe_in_child(&self, off: usize, timeout: Duration) -> io::Result<ChildExit> {
        let p = self.at(off, 1);
        // SAFETY: after fork the child only makes async-signal-safe calls
        // (signal, prctl, _exit) and one volatile read of memory it inherited,
        // so it never depends on locks or allocator state that another thread
        // of this process might have held at the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: in the child; see above. The default SIGBUS action makes
            // a fault end the child (our handler would patch and carry on).
            unsafe {
                libc::signal(libc::SIGBUS, libc::SIG_DFL);
                libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
                let _ = p.read_volatile();
                libc::_exit(0);
            }
        }
        wait_child(pid, timeout)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` is exactly the range this `Mapping` mapped and
        // owns; nothing refers into it once the `Mapping` is gone.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Waits for child `pid` for up to `timeout`, then kills it.
fn wait_child(pid: libc::pid_t, timeout: Duration) -> io::Result<ChildExit> {
    let deadline = Instant::now() + timeout;
    let reap = |pid: libc::pid_t| -> io::Result<Option<libc::c_int>> {
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid writes the status into `status`, a live local; `pid`
        // is our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        match r {
            r if r == pid => Ok(Some(status)),
            0 => Ok(None),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    };
    loop {
        if let Some(status) = reap(pid)? {
            return Ok(if libc::WIFSIGNALED(status) {
                ChildExit::Signaled(libc::WTERMSIG(status))
            } else {
                ChildExit::Exited(libc::WEXITSTATUS(status))
            });
        }
        if Instant::now() >= deadline {
            // SAFETY: `pid` is our child and has not been reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            // Reap it if it dies soon; one stuck in the kernel is left behind.
            let give_up = Instant::now() + Duration::from_secs(5);
            while reap(pid)?.is_none() && Instant::now() < give_up {
                thread::sleep(Duration::from_millis(10));
            }
            return Ok(ChildExit::TimedOut);
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// Page faults (minor plus major) the calling thread has taken so far.
pub fn thread_faults() -> io::Result<u64> {
    let mut ru = MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the `rusage` it is given, a live local.
    let r = unsafe { libc::getrusage(libc::RUSAGE_THREAD, ru.as_mut_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised and then filled in by a successful getrusage;
    // `rusage` is plain integers.
    let ru = unsafe { ru.assume_init() };
    Ok((ru.ru_minflt as u64).wrapping_add(ru.ru_majflt as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static N: AtomicUsize = AtomicUsize::new(0);

    #[test]
    fn anonymous_mapping() {
        let m = Mapping::anonymous(2 * 1024 * 1024).unwrap();
        assert_eq!(m.len(), 2 * 1024 * 1024);
        assert_eq!(m.addr() % PAGE_SIZE, 0);
        assert_eq!(m.read_u64(0x1000), 0);
        m.write_u64(0x1f_fff8, 0x1234_5678_9abc_def0);
        assert_eq!(m.read_u64(0x1f_fff8), 0x1234_5678_9abc_def0);
        assert_eq!(
            Mapping::anonymous(0).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }

    /// A scratch file of `len` bytes, removed when the `File` is the last reference.
    fn scratch(len: u64) -> File {
        let path = std::env::temp_dir().join(format!(
            "cxlvfio-mmap-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let f = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f.set_len(len).unwrap();
        f
    }

    #[test]
    fn shared_mapping_reads_and_writes() {
        let f = scratch(3 * 4096);
        let m = Mapping::shared(f.as_fd(), 4096, 2 * 4096).unwrap();
        assert_eq!(m.len(), 8192);
        assert_eq!(m.addr() % PAGE_SIZE, 0);
        m.write_u64(8, 0x1122_3344_5566_7788);
        m.write_bytes(19, b"hello, unaligned world");
        let mut b = [0u8; 8];
        f.read_exact_at(&mut b, 4096 + 8).unwrap();
        assert_eq!(u64::from_le_bytes(b), 0x1122_3344_5566_7788);
        let mut b = [0u8; 22];
        f.read_exact_at(&mut b, 4096 + 19).unwrap();
        assert_eq!(&b, b"hello, unaligned world");
        f.write_all_at(b"from the file", 4096 + 4090).unwrap();
        assert_eq!(m.read_vec(4090, 13), b"from the file");
        assert_eq!(m.read_u8(4090), b'f');
        assert_eq!(m.read_u64(8), 0x1122_3344_5566_7788);
    }

    #[test]
    fn narrow_accesses() {
        let f = scratch(4096);
        let m = Mapping::shared(f.as_fd(), 0, 4096).unwrap();
        m.write_u32(0x10, 0xcafe_f00d);
        m.write_u16(0x16, 0xbeef);
        let mut b = [0u8; 8];
        f.read_exact_at(&mut b, 0x10).unwrap();
        assert_eq!(b, [0x0d, 0xf0, 0xfe, 0xca, 0, 0, 0xef, 0xbe]);
        assert_eq!(m.read_u32(0x10), 0xcafe_f00d);
        assert_eq!(m.read_u16(0x12), 0xcafe);
        assert_eq!(m.read_u16(0x16), 0xbeef);
        assert_eq!(m.read_u32(0x14), 0xbeef_0000);
    }

    #[test]
    #[should_panic(expected = "unaligned 4-byte read")]
    fn narrow_accesses_are_aligned() {
        let f = scratch(4096);
        let m = Mapping::shared(f.as_fd(), 0, 4096).unwrap();
        m.read_u32(2);
    }

    #[test]
    #[should_panic(expected = "outside a mapping")]
    fn accesses_are_bounds_checked() {
        let f = scratch(4096);
        let m = Mapping::shared(f.as_fd(), 0, 4096).unwrap();
        m.read_u64(4096);
    }

    #[test]
    fn refusals_carry_errno() {
        let f = scratch(4096);
        let e = Mapping::map(f.as_fd(), 0, 4096, libc::PROT_READ, libc::MAP_FIXED).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        // Length 0 is refused by the kernel.
        let e = Mapping::shared(f.as_fd(), 0, 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        let e = Mapping::shared(f.as_fd(), u64::MAX, 4096).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EOVERFLOW));
    }

    #[test]
    fn aligned_and_skewed_placement() {
        let f = scratch(4 * 4096);
        for skew in [0, 4096] {
            let m = Mapping::shared_aligned(f.as_fd(), 0, 4 * 4096, 2 << 20, skew).unwrap();
            assert_eq!(m.addr() % (2 << 20), skew);
            m.write_u64(3 * 4096, 0xabcd + skew as u64);
            let mut b = [0u8; 8];
            f.read_exact_at(&mut b, 3 * 4096).unwrap();
            assert_eq!(u64::from_le_bytes(b), 0xabcd + skew as u64);
        }
        assert!(Mapping::shared_aligned(f.as_fd(), 0, 4096, 3 << 20, 0).is_err());
        assert!(Mapping::shared_aligned(f.as_fd(), 0, 4096, 2 << 20, 100).is_err());
        assert!(Mapping::shared_aligned(f.as_fd(), 0, 4096, 4096, 4096).is_err());
    }

    #[test]
    fn child_probe_sees_sigbus() {
        let f = scratch(2 * 4096);
        let m = Mapping::shared(f.as_fd(), 0, 2 * 4096).unwrap();
        let t = Duration::from_secs(10);
        assert_eq!(m.probe_in_child(4096, t).unwrap(), ChildExit::Exited(0));
        // A page past the end of the file: the fault is a SIGBUS.
        f.set_len(4096).unwrap();
        assert_eq!(
            m.probe_in_child(4096, t).unwrap(),
            ChildExit::Signaled(libc::SIGBUS)
        );
        assert_eq!(m.probe_in_child(0, t).unwrap(), ChildExit::Exited(0));
    }

    #[test]
    fn faults_are_counted_per_thread() {
        let f = scratch(64 * 4096);
        let m = Mapping::shared(f.as_fd(), 0, 64 * 4096).unwrap();
        let before = thread_faults().unwrap();
        for page in 0..64 {
            m.read_u64(page * 4096);
        }
        let faulted = thread_faults().unwrap() - before;
        // Fault-around may map several page-cache pages per fault, but a
        // fresh mapping needs at least one.
        assert!((1..=64 + 8).contains(&faulted), "{faulted}");
        let again = thread_faults().unwrap();
        for page in 0..64 {
            m.read_u64(page * 4096);
        }
        assert!(thread_faults().unwrap() - again <= 2);
    }
}
