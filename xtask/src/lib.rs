//! Library half of `xtask`, so the codegen check can run as a `#[test]` too.

pub mod bench;
pub mod codegen;
pub mod garment;
