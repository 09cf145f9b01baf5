// SPDX-License-Identifier: GPL-2.0

//! Test module: claims the host physical range `[start, start + size)` while loaded, as another
//! driver owning a device's memory range would, so that tests can check that cxl-vfio-pci then
//! refuses to open the device (`EBUSY`).
//!
//! With `leak_bytes`, it also leaks one allocation of that size at load: the sanitizer kernel's
//! positive control (`tests/vm/kmemleak-control.sh`), which shows that kmemleak finds a leak of
//! ours and that `cxlvfio sanitizer-check` fails on it. `start` and `size` may then be 0 (no
//! claim).

use kernel::{
    c_str,
    io::mem::{CxlWindowRange, DeviceMemory},
    prelude::*,
    str::CString,
};

module! {
    type: ClaimTest,
    name: "cxl_vfio_claim_test",
    author: "cxl-vfio-pci developers",
    description: "Test helper for cxl-vfio-pci: claims an iomem range while loaded",
    license: "GPL",
    params: {
        start: u64 {
            default: 0,
            description: "First byte of the range to claim (page aligned)",
        },
        size: u64 {
            default: 0,
            description: "Size of the range in bytes (page aligned)",
        },
        leak_bytes: u64 {
            default: 0,
            description: "Leak one allocation of this many bytes at load (kmemleak control)",
        },
    },
}

struct ClaimTest {
    _claim: Option<DeviceMemory>,
}

impl kernel::Module for ClaimTest {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let start = *module_parameters::start.value();
        let size = usize::try_from(*module_parameters::size.value()).map_err(|_| EINVAL)?;
        let leak_bytes =
            usize::try_from(*module_parameters::leak_bytes.value()).map_err(|_| EINVAL)?;
        if leak_bytes > 0 {
            // Forgotten, so nothing references it once init returns: kmemleak must report it,
            // with this module in its allocation backtrace.
            let leaked = KVec::<u8>::with_capacity(leak_bytes, GFP_KERNEL)?;
            core::mem::forget(leaked);
            pr_info!("leaked {} bytes (kmemleak control)\n", leak_bytes);
            if start == 0 && size == 0 {
                return Ok(Self { _claim: None });
            }
        }
        // Only ranges inside a CXL window can be claimed: the DPA ranges the tests need are.
        let claim = CxlWindowRange::find(start, size)
            .and_then(|range| {
                let name = CString::try_from(c_str!("cxl_vfio_claim_test"))?;
                Ok(DeviceMemory::claim(&range, name)?)
            })
            .inspect_err(|e| pr_err!("cannot claim {:#x}+{:#x}: {:?}\n", start, size, e))?;
        pr_info!(
            "claimed [mem {:#x}-{:#x}]\n",
            start,
            start + size as u64 - 1
        );
        Ok(Self {
            _claim: Some(claim),
        })
    }
}
