//! The pure parts of `cxlvfio-randops`, the in-VM random-operation fuzzer: its random
//! streams, operation table, argument generators, the DPA shadow, the host-address scanner,
//! the op log and the command line. Everything here runs without a device and is tested on
//! the host; the binary strings it together with the VFIO calls.

pub mod cli;
pub mod gen;
pub mod hostaddr;
pub mod invariants;
pub mod ops;
pub mod ring;
pub mod rng;
pub mod shadow;
