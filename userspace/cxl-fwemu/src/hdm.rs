//! CXL component registers: the CXL.cache/mem capability array and the
//! HDM Decoder Capability Structure (CXL 3.1 8.2.4 and 8.2.4.20), and the
//! sequence firmware uses to program and commit one decoder.
//!
//! All access goes through [`Regs32`] with 32-bit accesses only, because
//! QEMU's component registers ignore 64-bit accesses (reads return 0,
//! writes are dropped) and the specification only requires 32-bit support.

use std::fmt;

/// 32-bit register access to one CXL component register block; offsets
/// are in bytes from the start of the block and always 4-byte aligned.
pub trait Regs32 {
    /// Reads the register at `off`.
    fn read32(&self, off: usize) -> u32;
    /// Writes `v` to the register at `off`.
    fn write32(&mut self, off: usize, v: u32);
}

/// Offset of the CXL.cache/mem primary range inside a component block.
pub const CM_OFFSET: usize = 0x1000;
/// Size of the CXL.cache/mem primary range.
pub const CM_LEN: usize = 0x1000;
/// CXL_Capability_ID of the CXL Capability Header at the start of the range.
pub const CAP_ID_CXL: u16 = 1;
/// Capability id of the CXL HDM Decoder Capability Structure.
pub const CAP_ID_HDM: u16 = 5;

/// HDM Decoder Capability register (offset in the HDM structure).
pub const HDM_CAPABILITY: usize = 0x0;
/// HDM Decoder Global Control register (offset in the HDM structure).
pub const HDM_GLOBAL_CONTROL: usize = 0x4;
/// Global Control bit 1: HDM_Decoder_Enable.
pub const GLOBAL_CTRL_HDM_ENABLE: u32 = 1 << 1;
/// Offset of decoder 0 in the HDM structure.
pub const DECODER0: usize = 0x10;
/// Distance between consecutive decoders.
pub const DECODER_STRIDE: usize = 0x20;

/// Decoder register: Base Low (bits 31:28 = base[31:28]).
pub const DEC_BASE_LO: usize = 0x0;
/// Decoder register: Base High.
pub const DEC_BASE_HI: usize = 0x4;
/// Decoder register: Size Low (bits 31:28 = size[31:28]).
pub const DEC_SIZE_LO: usize = 0x8;
/// Decoder register: Size High.
pub const DEC_SIZE_HI: usize = 0xC;
/// Decoder register: Control.
pub const DEC_CTRL: usize = 0x10;
/// Decoder register: Target List Low (ports) / DPA Skip Low (endpoints).
pub const DEC_TARGET_LO: usize = 0x14;
/// Decoder register: Target List High (ports) / DPA Skip High (endpoints).
pub const DEC_TARGET_HI: usize = 0x18;

/// Control bits 3:0, interleave granularity (encoded).
pub const CTRL_IG_MASK: u32 = 0xF;
/// Control bits 7:4, interleave ways (encoded).
pub const CTRL_IW_MASK: u32 = 0xF0;
/// Control bit 8, Lock On Commit.
pub const CTRL_LOCK_ON_COMMIT: u32 = 1 << 8;
/// Control bit 9, Commit.
pub const CTRL_COMMIT: u32 = 1 << 9;
/// Control bit 10, Committed (set by hardware).
pub const CTRL_COMMITTED: u32 = 1 << 10;
/// Control bit 11, Error Not Committed (set by hardware).
pub const CTRL_ERROR_NOT_COMMITTED: u32 = 1 << 11;
/// Control bit 12, Target Range Type: 1 = host-only coherent (HDM-H, a
/// Type 3 memory expander), 0 = device coherent (HDM-D/DB, Type 2).
/// Linux sets it the same way (`CXL_HDM_DECODER0_CTRL_HOSTONLY`).
pub const CTRL_HOST_ONLY: u32 = 1 << 12;
/// Control bits this tool owns (12:0); bits above are preserved.
const CTRL_OWNED: u32 = 0x1FFF;

/// HDM decoder base and size granularity: 256 MiB.
pub const HDM_GRANULE: u64 = 256 << 20;

/// Largest alignment given to a device's base: 1 GiB, the largest page x86-64 maps.
pub const MAX_BASE_ALIGN: u64 = 1 << 30;

/// Where firmware places a device of `device_size` bytes in the window at `window_base` of
/// `window_size` bytes: at the first address aligned to the device's size (rounded up to a
/// power of two, at most [`MAX_BASE_ALIGN`]) where it fits, so that the OS can map it with
/// the largest pages; at the window's start if it fits nowhere aligned.
pub fn natural_base(window_base: u64, window_size: u64, device_size: u64) -> u64 {
    let align = device_size
        .checked_next_power_of_two()
        .unwrap_or(MAX_BASE_ALIGN)
        .clamp(HDM_GRANULE, MAX_BASE_ALIGN);
    let window_end = window_base.checked_add(window_size);
    window_base
        .checked_next_multiple_of(align)
        .filter(|base| {
            base.checked_add(device_size)
                .zip(window_end)
                .is_some_and(|(end, limit)| end <= limit)
        })
        .unwrap_or(window_base)
}

/// Why component registers could not be used or programmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HdmError {
    /// The mapped register block cannot contain the CXL.mem range.
    RegionTooSmall {
        /// Mapped length.
        len: usize,
    },
    /// The word at +0x1000 is not a CXL Capability Header.
    NotCxlCapHeader {
        /// Value read.
        value: u32,
    },
    /// A capability array entry points outside the mapped block.
    CapPointerOutOfRange {
        /// Capability id.
        id: u16,
        /// Pointer, relative to the CXL.mem range.
        pointer: usize,
    },
    /// No HDM Decoder Capability in the array.
    NoHdmCapability,
    /// A host bridge without an HDM Decoder Capability above more than one
    /// root port: only a host bridge with a single root port may pass
    /// CXL.mem through without decoders.
    NoHdmCapabilityMultiPort {
        /// Root ports counted below the host bridge.
        root_ports: usize,
    },
    /// Reserved decoder count encoding.
    BadDecoderCount {
        /// The encoding read from the capability register.
        encoding: u32,
    },
    /// The decoder array runs past the mapped block.
    DecodersOutOfRange {
        /// Offset of the HDM structure.
        offset: usize,
        /// Number of decoders.
        count: u32,
    },
    /// The decoder index does not exist.
    NoSuchDecoder {
        /// Requested index.
        index: u32,
        /// Number of decoders.
        count: u32,
    },
    /// An interleave ways encoding the specification reserves (valid:
    /// 0..=4 for 1, 2, 4, 8, 16 ways; 8..=10 for 3, 6, 12 ways).
    BadInterleaveWays {
        /// The encoded IW value.
        iw: u32,
    },
    /// A faulty endpoint decoder cannot be built for this window and
    /// device (it would overflow, or break a rule other than its own).
    FaultNotPlaceable {
        /// The fault asked for.
        fault: EndpointFault,
        /// Why, in words.
        why: &'static str,
    },
    /// A base or size that is not a non-zero multiple of 256 MiB (or a
    /// base + size that overflows).
    Misaligned {
        /// "base" or "size".
        what: &'static str,
        /// The value.
        value: u64,
    },
    /// The decoder is already committed with other settings.
    Conflict {
        /// Decoder index.
        index: u32,
        /// What the decoder holds.
        have: DecoderRegs,
        /// What was wanted, in words.
        want: String,
    },
    /// Hardware set Error Not Committed.
    CommitError {
        /// Decoder index.
        index: u32,
        /// Control register value.
        ctrl: u32,
    },
    /// Neither Committed nor Error Not Committed appeared in time.
    CommitTimeout {
        /// Decoder index.
        index: u32,
        /// Last control register value.
        ctrl: u32,
        /// Polls performed.
        polls: u32,
    },
}

impl fmt::Display for HdmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HdmError::RegionTooSmall { len } => write!(
                f,
                "component register block of {len:#x} bytes cannot hold the CXL.mem range \
                 at {CM_OFFSET:#x}..{:#x}",
                CM_OFFSET + CM_LEN
            ),
            HdmError::NotCxlCapHeader { value } => write!(
                f,
                "no CXL capability header at +{CM_OFFSET:#x} (read {value:#010x}; \
                 not a CXL component block, or the BAR is not decoding)"
            ),
            HdmError::CapPointerOutOfRange { id, pointer } => write!(
                f,
                "CXL capability {id} points to +{pointer:#x}, outside the register block"
            ),
            HdmError::NoHdmCapability => write!(f, "no HDM decoder capability (id 5)"),
            HdmError::NoHdmCapabilityMultiPort { root_ports } => write!(
                f,
                "no HDM decoder capability (id 5) but {root_ports} root ports below the host \
                 bridge; only a host bridge with a single root port may pass CXL.mem through \
                 without decoders"
            ),
            HdmError::BadDecoderCount { encoding } => {
                write!(f, "reserved HDM decoder count encoding {encoding:#x}")
            }
            HdmError::DecodersOutOfRange { offset, count } => write!(
                f,
                "{count} HDM decoders at +{offset:#x} run past the register block"
            ),
            HdmError::NoSuchDecoder { index, count } => {
                write!(f, "HDM decoder {index} does not exist (only {count})")
            }
            HdmError::BadInterleaveWays { iw } => write!(
                f,
                "interleave ways encoding {iw:#x} is reserved (valid: 0..=4, 8..=10)"
            ),
            HdmError::FaultNotPlaceable { fault, why } => {
                write!(f, "cannot play endpoint fault {fault}: {why}")
            }
            HdmError::Misaligned { what, value } => write!(
                f,
                "decoder {what} {value:#x} is not a non-zero multiple of 256 MiB \
                 (or base + size overflows)"
            ),
            HdmError::Conflict { index, have, want } => write!(
                f,
                "HDM decoder {index} is already committed with different settings \
                 ({have}); wanted {want}; refusing to reprogram it"
            ),
            HdmError::CommitError { index, ctrl } => write!(
                f,
                "HDM decoder {index} commit failed: Error Not Committed set (ctrl {ctrl:#010x})"
            ),
            HdmError::CommitTimeout { index, ctrl, polls } => write!(
                f,
                "HDM decoder {index} not committed after {polls} polls (ctrl {ctrl:#010x})"
            ),
        }
    }
}

impl std::error::Error for HdmError {}

/// One entry of the CXL.cache/mem capability array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapEntry {
    /// Capability id (2 RAS, 3 security, 4 link, 5 HDM, ...).
    pub id: u16,
    /// Capability version.
    pub version: u8,
    /// Offset of the capability from the start of the CXL.mem range.
    pub pointer: usize,
}

/// Reads the capability array at +0x1000 of a component block that is
/// `region_len` bytes long.
pub fn cap_array<R: Regs32 + ?Sized>(
    regs: &R,
    region_len: usize,
) -> Result<Vec<CapEntry>, HdmError> {
    if region_len < CM_OFFSET + CM_LEN {
        return Err(HdmError::RegionTooSmall { len: region_len });
    }
    let hdr = regs.read32(CM_OFFSET);
    if (hdr & 0xffff) as u16 != CAP_ID_CXL {
        return Err(HdmError::NotCxlCapHeader { value: hdr });
    }
    let count = (hdr >> 24) as usize;
    // At most 255 entries of 4 bytes: always inside the 4 KiB range.
    Ok((1..=count)
        .map(|i| {
            let e = regs.read32(CM_OFFSET + 4 * i);
            CapEntry {
                id: (e & 0xffff) as u16,
                version: ((e >> 16) & 0xf) as u8,
                pointer: (e >> 20) as usize,
            }
        })
        .collect())
}

/// Decodes the HDM Decoder Count field (CXL 3.1 8.2.4.20.1).
pub fn decoder_count(encoding: u32) -> Option<u32> {
    match encoding {
        0 => Some(1),
        1..=8 => Some(encoding * 2),
        9..=0xC => Some((encoding - 4) * 4),
        _ => None,
    }
}

/// The raw registers of one HDM decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecoderRegs {
    /// Base Low.
    pub base_lo: u32,
    /// Base High.
    pub base_hi: u32,
    /// Size Low.
    pub size_lo: u32,
    /// Size High.
    pub size_hi: u32,
    /// Control.
    pub ctrl: u32,
    /// Target List Low / DPA Skip Low.
    pub target_lo: u32,
    /// Target List High / DPA Skip High.
    pub target_hi: u32,
}

impl DecoderRegs {
    /// Decoded base address.
    pub fn base(&self) -> u64 {
        (u64::from(self.base_hi) << 32) | u64::from(self.base_lo & 0xf000_0000)
    }
    /// Decoded size.
    pub fn size(&self) -> u64 {
        (u64::from(self.size_hi) << 32) | u64::from(self.size_lo & 0xf000_0000)
    }
    /// Target list (ports) or DPA skip (endpoints) as one 64-bit value.
    pub fn target(&self) -> u64 {
        (u64::from(self.target_hi) << 32) | u64::from(self.target_lo)
    }
    /// Encoded interleave ways.
    pub fn iw(&self) -> u32 {
        (self.ctrl & CTRL_IW_MASK) >> 4
    }
    /// Encoded interleave granularity.
    pub fn ig(&self) -> u32 {
        self.ctrl & CTRL_IG_MASK
    }
    /// Whether hardware reports the decoder committed.
    pub fn committed(&self) -> bool {
        self.ctrl & CTRL_COMMITTED != 0
    }
}

impl fmt::Display for DecoderRegs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.ctrl;
        let bit = |m: u32| u8::from(c & m != 0);
        write!(
            f,
            "base={:#x} size={:#x} ctrl={:#010x} [IG={} IW={} lock={} commit={} committed={} \
             err={} type={}] target/skip={:#x}",
            self.base(),
            self.size(),
            c,
            self.ig(),
            self.iw(),
            bit(CTRL_LOCK_ON_COMMIT),
            bit(CTRL_COMMIT),
            bit(CTRL_COMMITTED),
            bit(CTRL_ERROR_NOT_COMMITTED),
            if c & CTRL_HOST_ONLY != 0 {
                "host-only"
            } else {
                "device-coherent"
            },
            self.target()
        )
    }
}

/// Which side of the link a decoder sits on; it decides what the
/// target/skip registers and the lock bit mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A host bridge (or switch) decoder routing to one downstream port.
    HostBridge {
        /// Port number of the root port (its Link Capabilities Port Number).
        target_port: u8,
    },
    /// An endpoint decoder mapping HPA to DPA 0 onwards (DPA skip 0).
    Endpoint,
}

/// What one decoder should decode: a single range, normally not
/// interleaved (`iw` 0); firmware never interleaves here, only
/// [`EndpointFault::Interleave2`] sets another value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderPlan {
    /// Host physical base address (256 MiB aligned).
    pub base: u64,
    /// Size in bytes (non-zero multiple of 256 MiB).
    pub size: u64,
    /// Encoded interleave ways (Control bits 7:4): 0 is 1 way, 1 is 2 ways.
    pub iw: u32,
    /// Host bridge or endpoint.
    pub role: Role,
}

impl DecoderPlan {
    fn validate(&self) -> Result<(), HdmError> {
        if !matches!(self.iw, 0..=4 | 8..=10) {
            return Err(HdmError::BadInterleaveWays { iw: self.iw });
        }
        if !self.base.is_multiple_of(HDM_GRANULE) {
            return Err(HdmError::Misaligned {
                what: "base",
                value: self.base,
            });
        }
        if self.size == 0
            || !self.size.is_multiple_of(HDM_GRANULE)
            || self.base.checked_add(self.size).is_none()
        {
            return Err(HdmError::Misaligned {
                what: "size",
                value: self.size,
            });
        }
        Ok(())
    }

    /// Value for the Target List (port in way 0) or DPA Skip (0) registers.
    pub fn target(&self) -> u64 {
        match self.role {
            Role::HostBridge { target_port } => u64::from(target_port),
            Role::Endpoint => 0,
        }
    }

    /// Control bits to commit with: IG 0, the plan's IW (0: 1 way),
    /// host-only; the endpoint is locked so nothing downstream of firmware
    /// can move it.
    pub fn ctrl(&self) -> u32 {
        let lock = match self.role {
            Role::HostBridge { .. } => 0,
            Role::Endpoint => CTRL_LOCK_ON_COMMIT,
        };
        CTRL_HOST_ONLY | ((self.iw << 4) & CTRL_IW_MASK) | lock | CTRL_COMMIT
    }

    /// Whether committed registers already implement this plan. For a
    /// host bridge only target way 0 is compared, as only it is used.
    fn matches(&self, d: &DecoderRegs) -> bool {
        let target_ok = match self.role {
            Role::HostBridge { target_port } => d.target_lo & 0xff == u32::from(target_port),
            Role::Endpoint => d.target() == 0,
        };
        d.base() == self.base && d.size() == self.size && d.iw() == self.iw && target_ok
    }

    fn describe(&self) -> String {
        match self.role {
            Role::HostBridge { target_port } => format!(
                "base={:#x} size={:#x} IW={} target port {target_port}",
                self.base, self.size, self.iw
            ),
            Role::Endpoint => format!(
                "base={:#x} size={:#x} IW={} dpa_skip=0",
                self.base, self.size, self.iw
            ),
        }
    }
}

/// A mistake faulty platform firmware could make in the endpoint decoder,
/// played on purpose to test that a driver refuses the result. Each breaks
/// exactly one rule and keeps the others: the range stays 256 MiB aligned
/// and, except for [`EndpointFault::OutsideWindow`], inside the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointFault {
    /// The decoder says it is one of 2 interleaved devices (IW = 1, IG 0).
    Interleave2,
    /// The decoder's base is the first 256 MiB boundary at or past the end
    /// of the window; same size.
    OutsideWindow,
    /// The decoder is twice the size of the device's memory.
    Oversize,
}

impl EndpointFault {
    /// Every fault, in the order the usage text lists them.
    pub const ALL: [EndpointFault; 3] = [
        EndpointFault::Interleave2,
        EndpointFault::OutsideWindow,
        EndpointFault::Oversize,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            EndpointFault::Interleave2 => "interleave2",
            EndpointFault::OutsideWindow => "outside-window",
            EndpointFault::Oversize => "oversize",
        }
    }

    /// What the fault does, in words.
    pub fn description(self) -> &'static str {
        match self {
            EndpointFault::Interleave2 => "endpoint decoder interleaved 2 ways (IW=1, IG=0)",
            EndpointFault::OutsideWindow => {
                "endpoint decoder based at or past the end of the CXL window"
            }
            EndpointFault::Oversize => "endpoint decoder twice the size of the device memory",
        }
    }
}

impl fmt::Display for EndpointFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for EndpointFault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EndpointFault::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = EndpointFault::ALL.iter().map(|f| f.name()).collect();
                format!("unknown endpoint fault '{s}' (one of {})", names.join(", "))
            })
    }
}

/// The endpoint decoder plan for a device of `device_size` bytes in the
/// window at `window_base` of `window_size` bytes: what correct firmware
/// programs (the window's start, the device's size, 1 way) or, with
/// `fault`, that plan with the one mistake.
pub fn endpoint_plan(
    window_base: u64,
    window_size: u64,
    device_size: u64,
    fault: Option<EndpointFault>,
) -> Result<DecoderPlan, HdmError> {
    let plan = DecoderPlan {
        base: window_base,
        size: device_size,
        iw: 0,
        role: Role::Endpoint,
    };
    let window_end = window_base.checked_add(window_size);
    let plan = match fault {
        None => plan,
        Some(EndpointFault::Interleave2) => DecoderPlan { iw: 1, ..plan },
        Some(fault @ EndpointFault::OutsideWindow) => {
            let base = window_end
                .and_then(|end| end.checked_next_multiple_of(HDM_GRANULE))
                .filter(|b| b.checked_add(device_size).is_some())
                .ok_or(HdmError::FaultNotPlaceable {
                    fault,
                    why: "no address space left past the window",
                })?;
            DecoderPlan { base, ..plan }
        }
        Some(fault @ EndpointFault::Oversize) => {
            let size = device_size
                .checked_mul(2)
                .filter(|s| {
                    window_base
                        .checked_add(*s)
                        .zip(window_end)
                        .is_some_and(|(e, w)| e <= w)
                })
                .ok_or(HdmError::FaultNotPlaceable {
                    fault,
                    why: "twice the device size does not fit in the window",
                })?;
            DecoderPlan { size, ..plan }
        }
    };
    plan.validate()?;
    Ok(plan)
}

/// What [`Hdm::program`] did to the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecoderOutcome {
    /// It was already committed with the wanted settings; left untouched.
    AlreadyCommitted,
    /// It was programmed and committed after `polls` extra polls.
    Committed {
        /// Number of delays spent waiting for Committed.
        polls: u32,
    },
}

/// Result of [`Hdm::program`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// What happened to the decoder.
    pub decoder: DecoderOutcome,
    /// Whether HDM_Decoder_Enable had to be set in Global Control.
    pub enabled_globally: bool,
}

/// A located HDM Decoder Capability Structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hdm {
    /// Offset of the structure from the start of the component block.
    pub offset: usize,
    /// The HDM Decoder Capability register.
    pub capability: u32,
    /// Number of decoders.
    pub decoder_count: u32,
}

impl Hdm {
    /// Finds the HDM decoder capability in a component block of
    /// `region_len` bytes and checks that all its decoders are mapped.
    pub fn locate<R: Regs32 + ?Sized>(regs: &R, region_len: usize) -> Result<Hdm, HdmError> {
        let entry = cap_array(regs, region_len)?
            .into_iter()
            .find(|e| e.id == CAP_ID_HDM)
            .ok_or(HdmError::NoHdmCapability)?;
        let offset = CM_OFFSET + entry.pointer;
        if !entry.pointer.is_multiple_of(4) || offset + DECODER0 > region_len {
            return Err(HdmError::CapPointerOutOfRange {
                id: entry.id,
                pointer: entry.pointer,
            });
        }
        let capability = regs.read32(offset + HDM_CAPABILITY);
        let encoding = capability & 0xf;
        let decoder_count =
            decoder_count(encoding).ok_or(HdmError::BadDecoderCount { encoding })?;
        if offset + DECODER0 + decoder_count as usize * DECODER_STRIDE > region_len {
            return Err(HdmError::DecodersOutOfRange {
                offset,
                count: decoder_count,
            });
        }
        Ok(Hdm {
            offset,
            capability,
            decoder_count,
        })
    }

    /// Target Count field (targets per decoder; ports only).
    pub fn target_count(&self) -> u32 {
        (self.capability >> 4) & 0xf
    }

    /// Reads HDM Decoder Global Control.
    pub fn global_control<R: Regs32 + ?Sized>(&self, regs: &R) -> u32 {
        regs.read32(self.offset + HDM_GLOBAL_CONTROL)
    }

    /// Offset of decoder `index` from the start of the component block.
    pub fn decoder_offset(&self, index: u32) -> Result<usize, HdmError> {
        if index >= self.decoder_count {
            return Err(HdmError::NoSuchDecoder {
                index,
                count: self.decoder_count,
            });
        }
        Ok(self.offset + DECODER0 + index as usize * DECODER_STRIDE)
    }

    /// Reads the registers of decoder `index`.
    pub fn decoder<R: Regs32 + ?Sized>(
        &self,
        regs: &R,
        index: u32,
    ) -> Result<DecoderRegs, HdmError> {
        let d = self.decoder_offset(index)?;
        Ok(DecoderRegs {
            base_lo: regs.read32(d + DEC_BASE_LO),
            base_hi: regs.read32(d + DEC_BASE_HI),
            size_lo: regs.read32(d + DEC_SIZE_LO),
            size_hi: regs.read32(d + DEC_SIZE_HI),
            ctrl: regs.read32(d + DEC_CTRL),
            target_lo: regs.read32(d + DEC_TARGET_LO),
            target_hi: regs.read32(d + DEC_TARGET_HI),
        })
    }

    /// Checks, without writing anything, whether decoder `index` can take
    /// `plan`: `Ok(true)` if it already holds it committed, `Ok(false)` if
    /// it needs programming, an error if it is committed differently.
    pub fn check<R: Regs32 + ?Sized>(
        &self,
        regs: &R,
        index: u32,
        plan: &DecoderPlan,
    ) -> Result<bool, HdmError> {
        plan.validate()?;
        let cur = self.decoder(regs, index)?;
        if !cur.committed() {
            return Ok(false);
        }
        if plan.matches(&cur) {
            Ok(true)
        } else {
            Err(HdmError::Conflict {
                index,
                have: cur,
                want: plan.describe(),
            })
        }
    }

    /// Programs and commits decoder `index` the way firmware does, and
    /// turns on HDM_Decoder_Enable. Waits for Committed by reading Control
    /// up to `max_polls` times, calling `delay` between reads.
    pub fn program<R: Regs32 + ?Sized>(
        &self,
        regs: &mut R,
        index: u32,
        plan: &DecoderPlan,
        max_polls: u32,
        delay: &mut dyn FnMut(),
    ) -> Result<Outcome, HdmError> {
        let already = self.check(regs, index, plan)?;
        let d = self.decoder_offset(index)?;

        // Decoders only decode while the global enable is on, so turn it
        // on even when the decoder itself is already in place.
        let global = self.global_control(regs);
        let enabled_globally = global & GLOBAL_CTRL_HDM_ENABLE == 0;
        if enabled_globally {
            regs.write32(
                self.offset + HDM_GLOBAL_CONTROL,
                global | GLOBAL_CTRL_HDM_ENABLE,
            );
        }
        if already {
            return Ok(Outcome {
                decoder: DecoderOutcome::AlreadyCommitted,
                enabled_globally,
            });
        }

        // Commit acts on a 0 -> 1 transition; clear a stale Commit left by
        // an earlier failed attempt first.
        let old = regs.read32(d + DEC_CTRL);
        if old & CTRL_COMMIT != 0 {
            regs.write32(d + DEC_CTRL, old & !CTRL_COMMIT);
        }
        let target = plan.target();
        regs.write32(d + DEC_BASE_LO, plan.base as u32);
        regs.write32(d + DEC_BASE_HI, (plan.base >> 32) as u32);
        regs.write32(d + DEC_SIZE_LO, plan.size as u32);
        regs.write32(d + DEC_SIZE_HI, (plan.size >> 32) as u32);
        regs.write32(d + DEC_TARGET_LO, target as u32);
        regs.write32(d + DEC_TARGET_HI, (target >> 32) as u32);
        let ctrl = (old & !CTRL_OWNED) | plan.ctrl();
        regs.write32(d + DEC_CTRL, ctrl);

        let mut polls = 0;
        loop {
            let now = regs.read32(d + DEC_CTRL);
            if now & CTRL_ERROR_NOT_COMMITTED != 0 {
                // Drop Commit so the decoder can be programmed again.
                regs.write32(d + DEC_CTRL, now & !CTRL_COMMIT);
                return Err(HdmError::CommitError { index, ctrl: now });
            }
            if now & CTRL_COMMITTED != 0 {
                return Ok(Outcome {
                    decoder: DecoderOutcome::Committed { polls },
                    enabled_globally,
                });
            }
            if polls >= max_polls {
                regs.write32(d + DEC_CTRL, now & !CTRL_COMMIT);
                return Err(HdmError::CommitTimeout {
                    index,
                    ctrl: now,
                    polls,
                });
            }
            delay();
            polls += 1;
        }
    }
}

/// How a host bridge routes its CXL fixed memory windows to its root ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostBridgeRouting {
    /// Through HDM decoders: decoder 0 must be programmed and committed.
    Decoders(Hdm),
    /// A pass-through host bridge: no HDM Decoder Capability and a single
    /// root port, which gets every access to the host bridge's windows. The
    /// CXL specification allows this (QEMU 10's `pxb-cxl` with one `cxl-rp`
    /// is one; Linux models it as a pass-through decoder). Nothing to program.
    PassThrough,
}

/// Finds out how a host bridge routes CXL.mem, from its component block of
/// `region_len` bytes and the number of root ports below it: a missing HDM
/// Decoder Capability is only acceptable with exactly one root port. Every
/// other error of [`Hdm::locate`] is returned as is.
pub fn host_bridge_routing<R: Regs32 + ?Sized>(
    regs: &R,
    region_len: usize,
    root_ports: usize,
) -> Result<HostBridgeRouting, HdmError> {
    match Hdm::locate(regs, region_len) {
        Ok(hdm) => Ok(HostBridgeRouting::Decoders(hdm)),
        Err(HdmError::NoHdmCapability) if root_ports == 1 => Ok(HostBridgeRouting::PassThrough),
        Err(HdmError::NoHdmCapability) => Err(HdmError::NoHdmCapabilityMultiPort { root_ports }),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, PartialEq)]
    enum Commit {
        /// QEMU 7.2: Commit -> Committed at once, Commit and Error cleared.
        Qemu,
        /// Hardware that reports Error Not Committed.
        Fails,
        /// Hardware that never answers.
        Hangs,
        /// Committed appears only after this many reads of Control.
        AfterReads(u32),
    }

    /// A 64 KiB component block that behaves like QEMU's: write masks
    /// keep read-only bits, and Control reacts to Commit.
    struct FakeRegs {
        mem: Vec<u32>,
        mask: Vec<u32>,
        writes: Vec<(usize, u32)>,
        commit: Commit,
        ctrl_offsets: Vec<usize>,
        ctrl_reads: std::cell::Cell<u32>,
    }

    const HDM_PTR: usize = 0x200;
    const HDM: usize = CM_OFFSET + HDM_PTR;
    const D0: usize = HDM + DECODER0;

    impl FakeRegs {
        /// Capability array with RAS, link and HDM (like the QEMU endpoint).
        fn new(decoder_encoding: u32, commit: Commit) -> Self {
            let mut f = FakeRegs {
                mem: vec![0; 0x10000 / 4],
                mask: vec![0xffff_ffff; 0x10000 / 4],
                writes: Vec::new(),
                commit,
                ctrl_offsets: Vec::new(),
                ctrl_reads: std::cell::Cell::new(0),
            };
            f.set(CM_OFFSET, 1 | (1 << 16) | (1 << 20) | (3 << 24));
            f.set(CM_OFFSET + 4, 2 | (2 << 16) | (0x80 << 20));
            f.set(CM_OFFSET + 8, 4 | (2 << 16) | (0x100 << 20));
            f.set(CM_OFFSET + 12, 5 | (1 << 16) | ((HDM_PTR as u32) << 20));
            f.set(HDM + HDM_CAPABILITY, decoder_encoding | (1 << 4));
            f.mask[HDM / 4] = 0;
            f.mask[(HDM + HDM_GLOBAL_CONTROL) / 4] = 0x3;
            let n = decoder_count(decoder_encoding).unwrap() as usize;
            for i in 0..n {
                let d = D0 + i * DECODER_STRIDE;
                f.mask[(d + DEC_BASE_LO) / 4] = 0xf000_0000;
                f.mask[(d + DEC_SIZE_LO) / 4] = 0xf000_0000;
                f.mask[(d + DEC_CTRL) / 4] = 0x13ff;
                f.ctrl_offsets.push(d + DEC_CTRL);
            }
            f
        }

        fn set(&mut self, off: usize, v: u32) {
            self.mem[off / 4] = v;
        }

        fn get(&self, off: usize) -> u32 {
            self.mem[off / 4]
        }
    }

    impl Regs32 for FakeRegs {
        fn read32(&self, off: usize) -> u32 {
            assert_eq!(off % 4, 0, "unaligned read at {off:#x}");
            if self.ctrl_offsets.contains(&off) {
                self.ctrl_reads.set(self.ctrl_reads.get() + 1);
                if let Commit::AfterReads(n) = self.commit {
                    let v = self.mem[off / 4];
                    if v & CTRL_COMMIT != 0 && self.ctrl_reads.get() > n {
                        return (v & !CTRL_COMMIT) | CTRL_COMMITTED;
                    }
                }
            }
            self.mem[off / 4]
        }

        fn write32(&mut self, off: usize, v: u32) {
            assert_eq!(off % 4, 0, "unaligned write at {off:#x}");
            self.writes.push((off, v));
            let m = self.mask[off / 4];
            let mut v = (v & m) | (self.mem[off / 4] & !m);
            if self.ctrl_offsets.contains(&off) && v & CTRL_COMMIT != 0 {
                match self.commit {
                    Commit::Qemu => {
                        v &= !(CTRL_COMMIT | CTRL_ERROR_NOT_COMMITTED);
                        v |= CTRL_COMMITTED;
                    }
                    Commit::Fails => v |= CTRL_ERROR_NOT_COMMITTED,
                    Commit::Hangs | Commit::AfterReads(_) => {}
                }
            }
            self.mem[off / 4] = v;
        }
    }

    const BASE: u64 = 0x2_9000_0000;
    const SIZE: u64 = 256 << 20;

    fn hb_plan(port: u8) -> DecoderPlan {
        DecoderPlan {
            base: BASE,
            size: SIZE,
            iw: 0,
            role: Role::HostBridge { target_port: port },
        }
    }

    fn ep_plan() -> DecoderPlan {
        DecoderPlan {
            base: BASE,
            size: SIZE,
            iw: 0,
            role: Role::Endpoint,
        }
    }

    fn program(f: &mut FakeRegs, plan: &DecoderPlan) -> Result<Outcome, HdmError> {
        let hdm = Hdm::locate(f, 0x10000).unwrap();
        hdm.program(f, 0, plan, 100, &mut || {})
    }

    #[test]
    fn decoder_count_encoding() {
        let table: Vec<_> = (0..=0xF).map(decoder_count).collect();
        assert_eq!(
            table,
            vec![
                Some(1),
                Some(2),
                Some(4),
                Some(6),
                Some(8),
                Some(10),
                Some(12),
                Some(14),
                Some(16),
                Some(20),
                Some(24),
                Some(28),
                Some(32),
                None,
                None,
                None
            ]
        );
    }

    #[test]
    fn parses_capability_array() {
        let f = FakeRegs::new(0, Commit::Qemu);
        let caps = cap_array(&f, 0x10000).unwrap();
        assert_eq!(
            caps,
            vec![
                CapEntry {
                    id: 2,
                    version: 2,
                    pointer: 0x80
                },
                CapEntry {
                    id: 4,
                    version: 2,
                    pointer: 0x100
                },
                CapEntry {
                    id: 5,
                    version: 1,
                    pointer: HDM_PTR
                },
            ]
        );
        let hdm = Hdm::locate(&f, 0x10000).unwrap();
        assert_eq!(hdm.offset, HDM);
        assert_eq!(hdm.decoder_count, 1);
        assert_eq!(hdm.target_count(), 1);
        assert_eq!(hdm.decoder_offset(0), Ok(D0));
        assert_eq!(
            hdm.decoder_offset(1),
            Err(HdmError::NoSuchDecoder { index: 1, count: 1 })
        );
    }

    #[test]
    fn capability_array_errors() {
        let f = FakeRegs::new(0, Commit::Qemu);
        assert_eq!(
            cap_array(&f, 0x1800),
            Err(HdmError::RegionTooSmall { len: 0x1800 })
        );

        let mut f = FakeRegs::new(0, Commit::Qemu);
        f.set(CM_OFFSET, 0xffff_ffff);
        assert_eq!(
            cap_array(&f, 0x10000),
            Err(HdmError::NotCxlCapHeader { value: 0xffff_ffff })
        );

        // Only RAS and link: no HDM.
        let mut f = FakeRegs::new(0, Commit::Qemu);
        f.set(CM_OFFSET, 1 | (1 << 16) | (1 << 20) | (2 << 24));
        assert_eq!(Hdm::locate(&f, 0x10000), Err(HdmError::NoHdmCapability));

        // HDM pointer past the mapped block.
        let mut f = FakeRegs::new(0, Commit::Qemu);
        f.set(CM_OFFSET + 12, 5 | (1 << 16) | (0xffc << 20));
        assert_eq!(
            Hdm::locate(&f, 0x2000),
            Err(HdmError::CapPointerOutOfRange {
                id: 5,
                pointer: 0xffc
            })
        );

        let mut f = FakeRegs::new(0, Commit::Qemu);
        f.set(HDM + HDM_CAPABILITY, 0xD);
        assert_eq!(
            Hdm::locate(&f, 0x10000),
            Err(HdmError::BadDecoderCount { encoding: 0xD })
        );

        // 32 decoders (0x410 bytes) do not fit between +0x1e00 and the
        // end of an 8 KiB map, but do in 64 KiB.
        let mut f = FakeRegs::new(0, Commit::Qemu);
        f.set(CM_OFFSET + 12, 5 | (1 << 16) | (0xe00 << 20));
        f.set(0x1e00, 0xC);
        assert_eq!(
            Hdm::locate(&f, 0x2000),
            Err(HdmError::DecodersOutOfRange {
                offset: 0x1e00,
                count: 32
            })
        );
        assert_eq!(Hdm::locate(&f, 0x10000).unwrap().decoder_count, 32);
    }

    #[test]
    fn programs_host_bridge_decoder() {
        let mut f = FakeRegs::new(0, Commit::Qemu);
        let out = program(&mut f, &hb_plan(3)).unwrap();
        assert_eq!(
            out,
            Outcome {
                decoder: DecoderOutcome::Committed { polls: 0 },
                enabled_globally: true
            }
        );
        assert_eq!(
            f.writes,
            vec![
                (HDM + HDM_GLOBAL_CONTROL, GLOBAL_CTRL_HDM_ENABLE),
                (D0 + DEC_BASE_LO, 0x9000_0000),
                (D0 + DEC_BASE_HI, 0x2),
                (D0 + DEC_SIZE_LO, 0x1000_0000),
                (D0 + DEC_SIZE_HI, 0),
                (D0 + DEC_TARGET_LO, 3),
                (D0 + DEC_TARGET_HI, 0),
                (D0 + DEC_CTRL, CTRL_HOST_ONLY | CTRL_COMMIT),
            ]
        );
        assert_eq!(f.get(D0 + DEC_CTRL), CTRL_HOST_ONLY | CTRL_COMMITTED);
        let hdm = Hdm::locate(&f, 0x10000).unwrap();
        let d = hdm.decoder(&f, 0).unwrap();
        assert_eq!((d.base(), d.size(), d.target()), (BASE, SIZE, 3));
        assert!(d.committed());
    }

    #[test]
    fn programs_endpoint_decoder_locked_with_zero_skip() {
        let mut f = FakeRegs::new(0, Commit::Qemu);
        // Pre-existing junk in the skip registers must be overwritten.
        f.set(D0 + DEC_TARGET_LO, 0xdead_0000);
        let out = program(&mut f, &ep_plan()).unwrap();
        assert_eq!(out.decoder, DecoderOutcome::Committed { polls: 0 });
        assert_eq!(
            &f.writes[1..],
            &[
                (D0 + DEC_BASE_LO, 0x9000_0000),
                (D0 + DEC_BASE_HI, 0x2),
                (D0 + DEC_SIZE_LO, 0x1000_0000),
                (D0 + DEC_SIZE_HI, 0),
                (D0 + DEC_TARGET_LO, 0),
                (D0 + DEC_TARGET_HI, 0),
                (
                    D0 + DEC_CTRL,
                    CTRL_HOST_ONLY | CTRL_LOCK_ON_COMMIT | CTRL_COMMIT
                ),
            ]
        );
        assert_eq!(
            f.get(D0 + DEC_CTRL),
            CTRL_HOST_ONLY | CTRL_LOCK_ON_COMMIT | CTRL_COMMITTED
        );
        assert_eq!(
            f.get(HDM + HDM_GLOBAL_CONTROL) & GLOBAL_CTRL_HDM_ENABLE,
            GLOBAL_CTRL_HDM_ENABLE
        );
    }

    #[test]
    fn large_base_and_size_use_both_halves() {
        let mut f = FakeRegs::new(1, Commit::Qemu);
        let plan = DecoderPlan {
            base: 0x12_3000_0000,
            size: 0x4_1000_0000,
            iw: 0,
            role: Role::Endpoint,
        };
        let hdm = Hdm::locate(&f, 0x10000).unwrap();
        hdm.program(&mut f, 1, &plan, 10, &mut || {}).unwrap();
        let d = hdm.decoder(&f, 1).unwrap();
        assert_eq!((d.base(), d.size()), (0x12_3000_0000, 0x4_1000_0000));
        assert!(d.committed());
        assert!(!hdm.decoder(&f, 0).unwrap().committed());
    }

    #[test]
    fn already_committed_identical_decoder_is_left_alone() {
        let mut f = FakeRegs::new(0, Commit::Qemu);
        program(&mut f, &hb_plan(0)).unwrap();
        f.writes.clear();
        let out = program(&mut f, &hb_plan(0)).unwrap();
        assert_eq!(
            out,
            Outcome {
                decoder: DecoderOutcome::AlreadyCommitted,
                enabled_globally: false
            }
        );
        assert!(f.writes.is_empty(), "wrote {:x?}", f.writes);
    }

    #[test]
    fn committed_decoder_with_global_enable_off_only_gets_enabled() {
        let mut f = FakeRegs::new(0, Commit::Qemu);
        program(&mut f, &ep_plan()).unwrap();
        f.set(HDM + HDM_GLOBAL_CONTROL, 0);
        f.writes.clear();
        let out = program(&mut f, &ep_plan()).unwrap();
        assert_eq!(out.decoder, DecoderOutcome::AlreadyCommitted);
        assert!(out.enabled_globally);
        assert_eq!(
            f.writes,
            vec![(HDM + HDM_GLOBAL_CONTROL, GLOBAL_CTRL_HDM_ENABLE)]
        );
    }

    #[test]
    fn conflicting_committed_decoder_is_an_error_and_untouched() {
        let mut f = FakeRegs::new(0, Commit::Qemu);
        program(&mut f, &hb_plan(0)).unwrap();
        let before = f.mem.clone();
        f.writes.clear();

        let other_base = DecoderPlan {
            base: BASE + SIZE,
            ..hb_plan(0)
        };
        let other_size = DecoderPlan {
            size: 2 * SIZE,
            ..hb_plan(0)
        };
        for plan in [other_base, other_size, hb_plan(1)] {
            let err = program(&mut f, &plan).unwrap_err();
            assert!(
                matches!(err, HdmError::Conflict { index: 0, .. }),
                "{err:?}"
            );
        }
        assert!(f.writes.is_empty());
        assert_eq!(f.mem, before);

        let hdm = Hdm::locate(&f, 0x10000).unwrap();
        assert_eq!(hdm.check(&f, 0, &hb_plan(0)), Ok(true));
        assert!(hdm.check(&f, 0, &other_base).is_err());
        let fresh = FakeRegs::new(0, Commit::Qemu);
        assert_eq!(hdm.check(&fresh, 0, &other_base), Ok(false));
    }

    #[test]
    fn commit_error_is_reported_and_commit_dropped() {
        let mut f = FakeRegs::new(0, Commit::Fails);
        let err = program(&mut f, &ep_plan()).unwrap_err();
        assert!(
            matches!(err, HdmError::CommitError { index: 0, .. }),
            "{err:?}"
        );
        assert_eq!(f.get(D0 + DEC_CTRL) & (CTRL_COMMIT | CTRL_COMMITTED), 0);
    }

    #[test]
    fn commit_timeout_is_bounded() {
        let mut f = FakeRegs::new(0, Commit::Hangs);
        let hdm = Hdm::locate(&f, 0x10000).unwrap();
        let mut delays = 0;
        let err = hdm
            .program(&mut f, 0, &hb_plan(0), 7, &mut || delays += 1)
            .unwrap_err();
        assert_eq!(delays, 7);
        assert!(
            matches!(
                err,
                HdmError::CommitTimeout {
                    index: 0,
                    polls: 7,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(f.get(D0 + DEC_CTRL) & CTRL_COMMIT, 0);
    }

    #[test]
    fn slow_commit_is_waited_for() {
        let mut f = FakeRegs::new(0, Commit::AfterReads(3));
        let hdm = Hdm::locate(&f, 0x10000).unwrap();
        let mut delays = 0;
        let out = hdm
            .program(&mut f, 0, &hb_plan(0), 100, &mut || delays += 1)
            .unwrap();
        // Reads 1 and 2 happen before the commit (check, then the old
        // Control value); poll read 3 still shows nothing, read 4 does.
        assert_eq!(out.decoder, DecoderOutcome::Committed { polls: 1 });
        assert_eq!(delays, 1);
    }

    #[test]
    fn stale_commit_bit_is_cleared_first() {
        let mut f = FakeRegs::new(0, Commit::Qemu);
        // Hardware that left Commit set without Committed.
        f.set(D0 + DEC_CTRL, CTRL_COMMIT | CTRL_LOCK_ON_COMMIT);
        program(&mut f, &hb_plan(0)).unwrap();
        assert_eq!(f.writes[1], (D0 + DEC_CTRL, CTRL_LOCK_ON_COMMIT));
        // The host bridge plan does not lock: Lock On Commit is cleared.
        assert_eq!(f.get(D0 + DEC_CTRL), CTRL_HOST_ONLY | CTRL_COMMITTED);
    }

    #[test]
    fn misaligned_plans_are_rejected_before_any_write() {
        let mut f = FakeRegs::new(0, Commit::Qemu);
        for plan in [
            DecoderPlan {
                base: BASE + 0x1000,
                ..ep_plan()
            },
            DecoderPlan {
                size: 0,
                ..ep_plan()
            },
            DecoderPlan {
                size: SIZE + (1 << 20),
                ..ep_plan()
            },
            DecoderPlan {
                base: u64::MAX - (HDM_GRANULE - 1),
                ..ep_plan()
            },
        ] {
            assert!(matches!(
                program(&mut f, &plan),
                Err(HdmError::Misaligned { .. })
            ));
        }
        assert!(f.writes.is_empty());
    }

    #[test]
    fn decoder_display_names_the_fields() {
        let d = DecoderRegs {
            base_lo: 0x9000_0000,
            base_hi: 2,
            size_lo: 0x1000_0000,
            ctrl: CTRL_HOST_ONLY | CTRL_COMMITTED,
            ..Default::default()
        };
        let s = d.to_string();
        assert!(s.contains("base=0x290000000"), "{s}");
        assert!(s.contains("size=0x10000000"), "{s}");
        assert!(s.contains("committed=1"), "{s}");
        assert!(s.contains("type=host-only"), "{s}");
    }

    /// The QEMU test window: 4 GiB at 0x2_9000_0000, device of 256 MiB.
    const WINDOW: u64 = 4 << 30;

    /// The writes that program decoder 0 after Global Control.
    fn decoder_writes(base: u64, size: u64, target: u32, ctrl: u32) -> Vec<(usize, u32)> {
        vec![
            (D0 + DEC_BASE_LO, base as u32),
            (D0 + DEC_BASE_HI, (base >> 32) as u32),
            (D0 + DEC_SIZE_LO, size as u32),
            (D0 + DEC_SIZE_HI, (size >> 32) as u32),
            (D0 + DEC_TARGET_LO, target),
            (D0 + DEC_TARGET_HI, 0),
            (D0 + DEC_CTRL, ctrl),
        ]
    }

    const EP_CTRL: u32 = CTRL_HOST_ONLY | CTRL_LOCK_ON_COMMIT | CTRL_COMMIT;

    #[test]
    fn natural_base_aligns_to_the_device_size_up_to_1_gib() {
        const GIB: u64 = 1 << 30;
        // 256 MiB at a 256 MiB aligned window start: the start.
        assert_eq!(
            natural_base(0x1_1000_0000, 4 * GIB, 256 << 20),
            0x1_1000_0000
        );
        // 512 MiB: the next 512 MiB boundary.
        assert_eq!(
            natural_base(0x1_1000_0000, 4 * GIB, 512 << 20),
            0x1_2000_0000
        );
        // 1 GiB and 4 GiB: the next 1 GiB boundary, never more.
        assert_eq!(natural_base(0x1_1000_0000, 4 * GIB, GIB), 0x1_4000_0000);
        assert_eq!(natural_base(0x1_0000_0000, 8 * GIB, 4 * GIB), 0x1_0000_0000);
        assert_eq!(natural_base(0x1_1000_0000, 8 * GIB, 4 * GIB), 0x1_4000_0000);
        // 768 MiB rounds up to a 1 GiB alignment.
        assert_eq!(
            natural_base(0x1_1000_0000, 4 * GIB, 768 << 20),
            0x1_4000_0000
        );
        // Does not fit aligned: the window's start.
        assert_eq!(natural_base(0x1_1000_0000, GIB, GIB), 0x1_1000_0000);
        // No overflow at the top of the address space.
        let top = u64::MAX - (HDM_GRANULE - 1);
        assert_eq!(natural_base(top, HDM_GRANULE - 1, GIB), top);
    }

    #[test]
    fn endpoint_plan_without_fault_is_the_usual_one() {
        assert_eq!(endpoint_plan(BASE, WINDOW, SIZE, None), Ok(ep_plan()));
    }

    #[test]
    fn endpoint_fault_plans() {
        let plan = |f| endpoint_plan(BASE, WINDOW, SIZE, Some(f)).unwrap();
        assert_eq!(
            plan(EndpointFault::Interleave2),
            DecoderPlan { iw: 1, ..ep_plan() }
        );
        // 0x2_9000_0000 + 4 GiB, already 256 MiB aligned.
        assert_eq!(
            plan(EndpointFault::OutsideWindow),
            DecoderPlan {
                base: 0x3_9000_0000,
                ..ep_plan()
            }
        );
        assert_eq!(
            plan(EndpointFault::Oversize),
            DecoderPlan {
                size: 2 * SIZE,
                ..ep_plan()
            }
        );
        // A window whose end is not 256 MiB aligned: the next boundary.
        let p = endpoint_plan(
            BASE,
            WINDOW + 0x1000,
            SIZE,
            Some(EndpointFault::OutsideWindow),
        )
        .unwrap();
        assert_eq!(p.base, 0x3_a000_0000);
    }

    #[test]
    fn endpoint_faults_that_cannot_be_placed_are_errors() {
        // Twice the device does not fit in a window the size of the device.
        assert_eq!(
            endpoint_plan(BASE, SIZE, SIZE, Some(EndpointFault::Oversize)),
            Err(HdmError::FaultNotPlaceable {
                fault: EndpointFault::Oversize,
                why: "twice the device size does not fit in the window",
            })
        );
        // No room past a window at the top of the address space.
        let top = u64::MAX - (HDM_GRANULE - 1) - WINDOW;
        assert!(matches!(
            endpoint_plan(top, WINDOW, SIZE, Some(EndpointFault::OutsideWindow)),
            Err(HdmError::FaultNotPlaceable {
                fault: EndpointFault::OutsideWindow,
                ..
            })
        ));
        assert!(matches!(
            endpoint_plan(BASE, WINDOW, SIZE + 1, None),
            Err(HdmError::Misaligned { what: "size", .. })
        ));
    }

    #[test]
    fn endpoint_fault_names_round_trip() {
        for f in EndpointFault::ALL {
            assert_eq!(f.name().parse::<EndpointFault>(), Ok(f));
            assert_eq!(f.to_string(), f.name());
        }
        assert_eq!(
            "interleave2".parse::<EndpointFault>(),
            Ok(EndpointFault::Interleave2)
        );
        assert_eq!(
            "outside-window".parse::<EndpointFault>(),
            Ok(EndpointFault::OutsideWindow)
        );
        assert_eq!(
            "oversize".parse::<EndpointFault>(),
            Ok(EndpointFault::Oversize)
        );
        let err = "interleave".parse::<EndpointFault>().unwrap_err();
        assert!(
            err.contains("interleave2, outside-window, oversize"),
            "{err}"
        );
    }

    #[test]
    fn programs_interleaved_endpoint_decoder() {
        let mut f = FakeRegs::new(0, Commit::Qemu);
        let plan = endpoint_plan(BASE, WINDOW, SIZE, Some(EndpointFault::Interleave2)).unwrap();
        program(&mut f, &plan).unwrap();
        // IW = 1 in bits 7:4, IG 0.
        let ctrl = EP_CTRL | (1 << 4);
        assert_eq!(&f.writes[1..], decoder_writes(BASE, SIZE, 0, ctrl));
        assert_eq!(
            f.get(D0 + DEC_CTRL),
            CTRL_HOST_ONLY | CTRL_LOCK_ON_COMMIT | CTRL_COMMITTED | 0x10
        );
        let d = Hdm::locate(&f, 0x10000).unwrap().decoder(&f, 0).unwrap();
        assert_eq!((d.iw(), d.ig(), d.committed()), (1, 0, true));
        assert!(d.to_string().contains("IG=0 IW=1"), "{d}");
    }

    #[test]
    fn programs_outside_window_endpoint_decoder() {
        let mut f = FakeRegs::new(0, Commit::Qemu);
        let plan = endpoint_plan(BASE, WINDOW, SIZE, Some(EndpointFault::OutsideWindow)).unwrap();
        program(&mut f, &plan).unwrap();
        assert_eq!(
            &f.writes[1..],
            decoder_writes(0x3_9000_0000, SIZE, 0, EP_CTRL)
        );
        assert_eq!(f.get(D0 + DEC_BASE_LO), 0x9000_0000);
        assert_eq!(f.get(D0 + DEC_BASE_HI), 0x3);
        let d = Hdm::locate(&f, 0x10000).unwrap().decoder(&f, 0).unwrap();
        assert_eq!((d.base(), d.size(), d.iw()), (BASE + WINDOW, SIZE, 0));
    }

    #[test]
    fn programs_oversize_endpoint_decoder() {
        let mut f = FakeRegs::new(0, Commit::Qemu);
        let plan = endpoint_plan(BASE, WINDOW, SIZE, Some(EndpointFault::Oversize)).unwrap();
        program(&mut f, &plan).unwrap();
        assert_eq!(&f.writes[1..], decoder_writes(BASE, 2 * SIZE, 0, EP_CTRL));
        assert_eq!(f.get(D0 + DEC_SIZE_LO), 0x2000_0000);
        let d = Hdm::locate(&f, 0x10000).unwrap().decoder(&f, 0).unwrap();
        assert_eq!((d.base(), d.size(), d.iw()), (BASE, 2 * SIZE, 0));
    }

    #[test]
    fn check_compares_interleave_ways() {
        let mut f = FakeRegs::new(0, Commit::Qemu);
        let interleaved = DecoderPlan { iw: 1, ..ep_plan() };
        program(&mut f, &interleaved).unwrap();
        let hdm = Hdm::locate(&f, 0x10000).unwrap();
        assert_eq!(hdm.check(&f, 0, &interleaved), Ok(true));
        // A correct plan over a committed interleaved decoder is refused
        // (QEMU cannot uncommit it; only a reset clears it) ...
        let err = hdm.check(&f, 0, &ep_plan()).unwrap_err();
        assert!(
            matches!(err, HdmError::Conflict { index: 0, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("wanted base=0x290000000 size=0x10000000 IW=0"),
            "{err}"
        );
        // ... and the other way round.
        let mut f = FakeRegs::new(0, Commit::Qemu);
        program(&mut f, &ep_plan()).unwrap();
        assert!(hdm.check(&f, 0, &interleaved).is_err());
    }

    #[test]
    fn reserved_interleave_ways_are_rejected_before_any_write() {
        let mut f = FakeRegs::new(0, Commit::Qemu);
        for iw in [5, 7, 11, 15, 16] {
            assert_eq!(
                program(&mut f, &DecoderPlan { iw, ..ep_plan() }),
                Err(HdmError::BadInterleaveWays { iw })
            );
        }
        assert!(f.writes.is_empty());
        for iw in [0, 1, 2, 3, 4, 8, 9, 10] {
            let plan = DecoderPlan { iw, ..ep_plan() };
            assert_eq!(plan.ctrl() & CTRL_IW_MASK, iw << 4);
        }
    }

    /// QEMU 10's pass-through `pxb-cxl`: the HDM entry of the capability
    /// array is still there, but its id reads 0 (no capability).
    fn passthrough_host_bridge() -> FakeRegs {
        let mut f = FakeRegs::new(0, Commit::Qemu);
        f.set(CM_OFFSET + 12, (1 << 16) | ((HDM_PTR as u32) << 20));
        f
    }

    #[test]
    fn host_bridge_with_decoders_is_routed_through_them() {
        let f = FakeRegs::new(0, Commit::Qemu);
        let hdm = Hdm::locate(&f, 0x10000).unwrap();
        for ports in [0, 1, 2, 8] {
            assert_eq!(
                host_bridge_routing(&f, 0x10000, ports),
                Ok(HostBridgeRouting::Decoders(hdm))
            );
        }
    }

    #[test]
    fn host_bridge_without_decoders_passes_through_one_root_port_only() {
        let f = passthrough_host_bridge();
        assert_eq!(Hdm::locate(&f, 0x10000), Err(HdmError::NoHdmCapability));
        assert_eq!(
            host_bridge_routing(&f, 0x10000, 1),
            Ok(HostBridgeRouting::PassThrough)
        );
        for ports in [0, 2, 3] {
            let err = host_bridge_routing(&f, 0x10000, ports).unwrap_err();
            assert_eq!(
                err,
                HdmError::NoHdmCapabilityMultiPort { root_ports: ports }
            );
            assert!(
                err.to_string()
                    .contains(&format!("but {ports} root ports below the host bridge")),
                "{err}"
            );
        }
        // A capability array with no HDM entry at all is the same case.
        let mut f = FakeRegs::new(0, Commit::Qemu);
        f.set(CM_OFFSET, 1 | (1 << 16) | (1 << 20) | (2 << 24));
        assert_eq!(
            host_bridge_routing(&f, 0x10000, 1),
            Ok(HostBridgeRouting::PassThrough)
        );
    }

    #[test]
    fn host_bridge_routing_keeps_other_errors() {
        // Not a component block: never taken for a pass-through bridge.
        let mut f = passthrough_host_bridge();
        f.set(CM_OFFSET, 0);
        assert_eq!(
            host_bridge_routing(&f, 0x10000, 1),
            Err(HdmError::NotCxlCapHeader { value: 0 })
        );
        assert_eq!(
            host_bridge_routing(&f, 0x1000, 1),
            Err(HdmError::RegionTooSmall { len: 0x1000 })
        );
    }
}
