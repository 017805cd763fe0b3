//! Benchmarks of the proxy (filled in below).
fn main() {}
