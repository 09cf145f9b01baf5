// SPDX-License-Identifier: GPL-2.0

//! cxl-vfio-pci: a vfio-pci variant driver for CXL.mem-capable PCI devices.
//!
//! The driver binds only through `driver_override` and registers a vfio-pci-core device that
//! behaves as vfio-pci does. At bind it looks for the CXL Device DVSEC, unless the module
//! parameter `disable_cxl` is set, in which case it never looks at CXL state at all.

use kernel::{c_str, dev_info, pci, prelude::*, vfio::pci as vfio_pci};

module! {
    type: CxlVfioPciModule,
    name: "cxl_vfio_pci",
    author: "cxl-vfio-pci developers",
    description: "VFIO PCI variant driver for CXL.mem-capable devices",
    license: "GPL",
    params: {
        disable_cxl: bool {
            default: false,
            description: "Disable the CXL extensions: the driver then behaves as plain vfio-pci",
        },
    },
}

/// PCI-SIG assigned vendor ID of the CXL consortium, used by every CXL DVSEC.
const CXL_DVSEC_VENDOR_ID: u16 = 0x1e98;
/// DVSEC ID of the CXL PCIe Device DVSEC (CXL 3.1, 8.1.3).
const CXL_DVSEC_PCIE_DEVICE: u16 = 0;

/// The variant driver.
struct CxlVfioPci;

#[vtable]
impl vfio_pci::Driver for CxlVfioPci {
    // No per-device state yet: the CXL extensions will keep theirs here.
    type Data = ();
    const NAME: &'static CStr = c_str!("cxl-vfio-pci");

    fn probe(pdev: &pci::Device) -> impl PinInit<(), Error> {
        if *module_parameters::disable_cxl.value() {
            dev_info!(pdev.as_dev(), "CXL extensions disabled (disable_cxl=1)\n");
        } else {
            match pdev.find_dvsec(CXL_DVSEC_VENDOR_ID, CXL_DVSEC_PCIE_DEVICE) {
                Some(pos) => dev_info!(pdev.as_dev(), "CXL Device DVSEC at {:#x}\n", pos),
                None => dev_info!(pdev.as_dev(), "no CXL Device DVSEC: plain vfio-pci\n"),
            }
        }
    }
}

struct CxlVfioPciModule {
    _driver: vfio_pci::Registration<CxlVfioPci>,
}

impl kernel::Module for CxlVfioPciModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        Ok(Self {
            _driver: vfio_pci::Registration::new(module, c_str!("cxl_vfio_pci"))?,
        })
    }
}
