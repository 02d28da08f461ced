//! Library half of `xtask`, so the codegen check can run as a `#[test]` too.

pub mod codegen;
pub mod garment;
