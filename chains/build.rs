//! Generates the prost types of TRON's own protocol definitions
//! (`proto/tron`, vendored unmodified from github.com/tronprotocol/protocol;
//! see `proto/tron/README.md`) with a vendored `protoc`, so building Sigil
//! never needs protobuf tooling on the machine.
//!
//! `google.protobuf.Any` maps to `prost_types::Any` (prost-build's default
//! for well-known types); its `.proto` comes with the vendored `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = "proto/tron";
    let protos = [
        "proto/tron/core/Tron.proto",
        "proto/tron/core/Discover.proto",
        "proto/tron/core/contract/common.proto",
        "proto/tron/core/contract/balance_contract.proto",
        "proto/tron/core/contract/smart_contract.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    println!("cargo:rerun-if-changed=build.rs");
    let google: PathBuf = protoc_bin_vendored::include_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    config.compile_protos(&protos, &[PathBuf::from(root), google])?;
    Ok(())
}
