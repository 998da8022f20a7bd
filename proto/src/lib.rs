//! Sigil's gRPC contract, package `sigil.v1`.
//!
//! The `.proto` files under `proto/sigil/v1/` are the source of truth; this
//! crate only compiles them (with a vendored `protoc`) and exposes the
//! generated types, the tonic clients and servers, and the encoded file
//! descriptor set that server reflection serves.

/// Generated code for `sigil.v1`.
#[allow(missing_docs, missing_debug_implementations, clippy::all)]
pub mod v1 {
    tonic::include_proto!("sigil.v1");
}

/// Encoded `FileDescriptorSet` of every Sigil service, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("sigil_v1_descriptor");

pub mod audit;
pub mod convert;

/// Fully qualified gRPC service names, as used by health checking.
pub mod service_names {
    pub const NODE: &str = "sigil.v1.Node";
    pub const SIGNING: &str = "sigil.v1.Signing";
    pub const KEY_ADMIN: &str = "sigil.v1.KeyAdmin";
    pub const AUDIT: &str = "sigil.v1.Audit";
}
