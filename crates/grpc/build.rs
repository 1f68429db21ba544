//! Generates the gRPC server, client and messages from `proto/mailfwd/v1/forwarding.proto`,
//! and the encoded file descriptor set that server reflection serves. Uses a vendored
//! `protoc`, so a fresh machine needs no system package.

use std::error::Error;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let proto_root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let proto = proto_root.join("mailfwd/v1/forwarding.proto");
    let descriptors = PathBuf::from(std::env::var("OUT_DIR")?).join("mailfwd_descriptor.bin");

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptors)
        .compile_with_config(config, &[&proto], &[&proto_root])?;
    println!("cargo:rerun-if-changed={}", proto.display());
    Ok(())
}
