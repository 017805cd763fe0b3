//! Compiles `proto/control.proto` and the example shop's `proto/shop.proto` with protox (pure
//! Rust): the build needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/control.proto");
    println!("cargo:rerun-if-changed=proto/shop.proto");
    let descriptors = protox::compile(["control.proto", "shop.proto"], ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
