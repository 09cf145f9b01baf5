//! Tests of the register model.

mod caparray;
mod comp_regs;
mod dvsec;
mod fixtures;
mod props;
