//! Status-poll benchmark (placeholder).
fn main() {}
