//! Tests of the register model.

mod caparray;
mod comp_regs;
mod config;
mod dpa;
mod dvsec;
mod fixtures;
mod info;
mod props;
mod release;
mod restore;
mod sparse;
mod window;
