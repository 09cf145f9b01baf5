//! `VFIO_DEVICE_IOEVENTFD` requests, and races that change a request in user memory while the
//! kernel handles it (the offset of an ioeventfd, the index of a region info request): the
//! driver must check and use one and the same copy.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use crate::uapi::VFIO_DEVICE_IOEVENTFD;
use crate::Device;

/// `VFIO_DEVICE_IOEVENTFD_32`: a 4-byte write.
pub const SIZE_32: u32 = 1 << 2;

/// `struct vfio_device_ioeventfd`, with an offset that another thread may change while the
/// kernel reads the request.
#[repr(C)]
struct Request {
    argsz: u32,
    flags: u32,
    offset: AtomicU64,
    data: u64,
    fd: i32,
    reserved: u32,
}

impl Request {
    fn new(offset: u64, data: u64, fd: i32) -> Self {
        Self {
            argsz: std::mem::size_of::<Self>() as u32,
            flags: SIZE_32,
            offset: AtomicU64::new(offset),
            data,
            fd,
            reserved: 0,
        }
    }

    fn submit(&self, dev: BorrowedFd<'_>) -> io::Result<()> {
        // SAFETY: `self` is a complete `struct vfio_device_ioeventfd` that outlives the call;
        // the kernel only reads it (another thread may store to `offset` meanwhile, which is
        // the point of the race).
        let ret = unsafe {
            libc::ioctl(
                dev.as_raw_fd(),
                VFIO_DEVICE_IOEVENTFD as _,
                self as *const Self,
            )
        };
        if ret != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Registers a 4-byte ioeventfd writing `data` at device-file `offset` when `fd` is signalled,
/// or with `fd` -1 removes the one registered there with `data`.
pub fn set(dev: &Device, offset: u64, data: u64, fd: i32) -> io::Result<()> {
    Request::new(offset, data, fd).submit(dev.as_fd())
}

/// Submits a `struct vfio_device_ioeventfd` with every field as given, for tests of corrupted
/// requests (`argsz` below the structure, unknown or several size flags, offsets outside any
/// BAR). The kernel reads the whole structure and writes nothing back.
pub fn set_raw(
    dev: &Device,
    argsz: u32,
    flags: u32,
    offset: u64,
    data: u64,
    fd: i32,
) -> io::Result<()> {
    let mut req = Request::new(offset, data, fd);
    req.argsz = argsz;
    req.flags = flags;
    req.submit(dev.as_fd())
}

/// A new eventfd.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd() has no memory arguments.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Signals an eventfd once.
pub fn signal(fd: BorrowedFd<'_>) -> io::Result<()> {
    let one = 1u64.to_ne_bytes();
    // SAFETY: `one` is 8 readable bytes, alive for the call.
    let n = unsafe { libc::write(fd.as_raw_fd(), one.as_ptr().cast(), one.len()) };
    if n != 8 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// What [`race_offset`] saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RaceReport {
    /// Registrations tried.
    pub attempts: usize,
    /// Registrations refused with `EINVAL` (the offset the kernel checked was the target).
    pub refused: usize,
    /// Registrations accepted and then removed at the harmless offset.
    pub harmless: usize,
    /// Registrations accepted at an offset mixed from the bytes of both (the kernel copied
    /// the request while it changed) that touches nothing of the block; removed there.
    pub mixed: usize,
    /// Registrations accepted at the target or at a mixed offset that touches the block
    /// (removed there if the kernel lets it). Each was signalled once.
    pub strays: usize,
    /// Any other error, at most a few.
    pub errors: Vec<String>,
}

/// Every offset whose bytes each come from `a` or `b`, `a` first and `b` second: what a copy
/// made a byte at a time while the value flips between the two can read.
pub fn byte_mixes(a: u64, b: u64) -> Vec<u64> {
    let differing: Vec<u32> = (0..8).filter(|i| (a ^ b) >> (8 * i) & 0xff != 0).collect();
    let mut mixes: Vec<u64> = (0..1u32 << differing.len())
        .map(|pick| {
            differing
                .iter()
                .enumerate()
                .filter(|(bit, _)| pick >> bit & 1 == 1)
                .fold(a, |v, (_, &i)| {
                    let mask = 0xffu64 << (8 * i);
                    (v & !mask) | (b & mask)
                })
        })
        .collect();
    // `a` (pick 0) is first; put `b` (every byte picked) second.
    let last = mixes.len() - 1;
    mixes.swap(1.min(last), last);
    mixes
}

/// Registers ioeventfds `attempts` times with one request whose offset a second thread keeps
/// flipping between `harmless` and `target`. Every accepted registration is signalled once (a
/// stray one writes `data` at `target`) and then removed where it is: at `harmless`, at
/// `target`, or at an offset mixed from both (`touches_block` says whether that one is a
/// stray).
pub fn race_offset(
    dev: &Device,
    harmless: u64,
    target: u64,
    data: u64,
    attempts: usize,
    touches_block: impl Fn(u64) -> bool,
) -> io::Result<RaceReport> {
    let mixes = byte_mixes(harmless, target);
    let efd = eventfd()?;
    let req = Arc::new(Request::new(harmless, data, efd.as_raw_fd()));
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let (req, stop) = (Arc::clone(&req), Arc::clone(&stop));
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                req.offset.store(target, Ordering::Relaxed);
                std::hint::spin_loop();
                req.offset.store(harmless, Ordering::Relaxed);
                std::hint::spin_loop();
            }
        })
    };
    let mut report = RaceReport {
        attempts,
        ..RaceReport::default()
    };
    for _ in 0..attempts {
        match req.submit(dev.as_fd()) {
            Ok(()) => {
                signal(efd.as_fd())?;
                let mut removed_at = None;
                for &at in &mixes {
                    match set(dev, at, data, -1) {
                        Ok(()) => {
                            removed_at = Some(at);
                            break;
                        }
                        // None there, or no place for one (past the end of its BAR).
                        Err(e) if matches!(e.raw_os_error(), Some(libc::ENODEV | libc::EINVAL)) => {
                        }
                        Err(e) => {
                            if report.errors.len() < 4 {
                                report.errors.push(format!("removing at {at:#x}: {e}"));
                            }
                            break;
                        }
                    }
                }
                match removed_at {
                    Some(at) if at == harmless => report.harmless += 1,
                    Some(at) if at != target && !touches_block(at) => report.mixed += 1,
                    Some(_) => report.strays += 1,
                    // A driver that refuses to remove it at the target leaves it until close.
                    None => report.strays += 1,
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => report.refused += 1,
            Err(e) => {
                if report.errors.len() < 4 {
                    report.errors.push(format!("registering: {e}"));
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = flipper.join();
    Ok(report)
}

/// `struct vfio_region_info` with room for a capability chain, whose `index` another thread
/// may change while the kernel reads the request.
#[repr(C)]
struct RegionInfoRequest {
    argsz: u32,
    flags: u32,
    index: std::sync::atomic::AtomicU32,
    cap_offset: u32,
    size: u64,
    offset: u64,
    caps: [u8; 256],
}

/// What [`race_region_info`] saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RegionInfoRace {
    /// Requests made.
    pub attempts: usize,
    /// Replies for the watched region.
    pub watched: usize,
    /// Replies for the watched region whose flags differed from the reference reply.
    pub inconsistent: usize,
    /// The first inconsistent flags seen.
    pub first_bad_flags: Option<u32>,
}

/// Asks `VFIO_DEVICE_GET_REGION_INFO` `attempts` times with one request whose `index` a second
/// thread keeps flipping between `other` and `watched`, and counts the replies for `watched`
/// whose flags differ from `reference_flags` (what an undisturbed request for it returns). The
/// region a reply is for is read from its `offset` (the index times 2^40), which only the
/// kernel writes.
pub fn race_region_info(
    dev: &Device,
    other: u32,
    watched: u32,
    reference_flags: u32,
    attempts: usize,
) -> io::Result<RegionInfoRace> {
    use std::ptr::addr_of_mut;
    use std::sync::atomic::AtomicU32;
    // The kernel and the flipper share the request: it is reached only through raw pointers
    // (no Rust reference to it exists while the kernel or the flipper may write it), and freed
    // after the flipper is joined.
    let req: *mut RegionInfoRequest = Box::into_raw(Box::new(RegionInfoRequest {
        argsz: 0,
        flags: 0,
        index: AtomicU32::new(other),
        cap_offset: 0,
        size: 0,
        offset: 0,
        caps: [0; 256],
    }));
    // SAFETY: `req` is valid until the `Box::from_raw` below, after the join.
    let index_addr = unsafe { addr_of_mut!((*req).index) } as usize;
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            // SAFETY: `index_addr` is the request's `AtomicU32`, valid until after this
            // thread is joined; atomics may be stored to from any thread.
            let index = unsafe { &*(index_addr as *const AtomicU32) };
            while !stop.load(Ordering::Relaxed) {
                index.store(watched, Ordering::Relaxed);
                std::hint::spin_loop();
                index.store(other, Ordering::Relaxed);
                std::hint::spin_loop();
            }
        })
    };
    let mut report = RegionInfoRace {
        attempts,
        ..RegionInfoRace::default()
    };
    let mut result = Ok(());
    let caps = crate::uapi::VFIO_REGION_INFO_FLAG_CAPS;
    for _ in 0..attempts {
        // SAFETY: `req` is valid (see above); only this thread and the kernel (during the
        // call, which returned) touch the fields other than `index`.
        let ret = unsafe {
            addr_of_mut!((*req).argsz).write(std::mem::size_of::<RegionInfoRequest>() as u32);
            libc::ioctl(
                dev.as_fd().as_raw_fd(),
                crate::uapi::VFIO_DEVICE_GET_REGION_INFO as _,
                req,
            )
        };
        if ret != 0 {
            result = Err(io::Error::last_os_error());
            break;
        }
        // SAFETY: As above; the kernel wrote the reply during the call.
        let (flags, offset) = unsafe {
            (
                addr_of_mut!((*req).flags).read(),
                addr_of_mut!((*req).offset).read(),
            )
        };
        if offset >> 40 == u64::from(watched) {
            report.watched += 1;
            if flags & !caps != reference_flags & !caps {
                report.inconsistent += 1;
                report.first_bad_flags.get_or_insert(flags);
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = flipper.join();
    // SAFETY: From `Box::into_raw` above; the flipper is gone and no call is under way.
    drop(unsafe { Box::from_raw(req) });
    result.map(|()| report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_mixes_cover_every_byte_choice() {
        assert_eq!(byte_mixes(5, 5), vec![5]);
        assert_eq!(byte_mixes(0x1148, 0x1149), vec![0x1148, 0x1149]);
        let h = 2u64 << 40;
        let t = 0x1148u64;
        let m = byte_mixes(h, t);
        assert_eq!(m.len(), 8);
        assert_eq!((m[0], m[1]), (h, t));
        for v in [h | 0x1148, h | 0x1100, h | 0x48, 0x1100, 0x48] {
            assert!(m.contains(&v), "{v:#x} missing from {m:x?}");
        }
    }

    #[test]
    fn raw_requests_reach_the_ioctl() {
        let d = Device::from_file(std::fs::File::open("/dev/null").unwrap(), "null");
        let e = set_raw(&d, 3, 0xff, u64::MAX, 0, -1).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTTY));
        let e = set(&d, 0, 0, -1).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTTY));
    }
}
