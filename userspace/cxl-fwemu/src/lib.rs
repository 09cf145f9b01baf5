//! Pure (I/O-free) building blocks of `cxl-fwemu`, the stand-in for the
//! platform firmware that QEMU 7.2 lacks: it programs and commits the CXL
//! host bridge and endpoint HDM decoders so that the CXL fixed memory window
//! advertised in the ACPI CEDT routes to the device's memory.
//!
//! Everything here works on byte slices or on the [`hdm::Regs32`] register
//! trait so it can be unit-tested without hardware; `main.rs` does the file
//! reading and the `mmap`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cedt;
pub mod dvsec;
pub mod hdm;

/// Reads a little-endian `u16` at `off`; the caller has checked the bounds.
pub(crate) fn le16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

/// Reads a little-endian `u32` at `off`; the caller has checked the bounds.
pub(crate) fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Reads a little-endian `u64` at `off`; the caller has checked the bounds.
pub(crate) fn le64(b: &[u8], off: usize) -> u64 {
    u64::from(le32(b, off)) | (u64::from(le32(b, off + 4)) << 32)
}
