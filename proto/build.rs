//! Generates the tonic/prost code for `sigil.v1` with a vendored `protoc`,
//! so building Sigil never needs protobuf tooling on the machine.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "sigil/v1/common.proto",
        "sigil/v1/policy.proto",
        "sigil/v1/node.proto",
        "sigil/v1/coordinator.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("sigil_v1_descriptor.bin"))
        .compile_with_config(config, &protos, &["."])?;
    Ok(())
}
