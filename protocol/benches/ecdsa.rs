//! Criterion benchmarks of Sigil's threshold ECDSA (DKLs23), in-process: the
//! CPU cost, summed over every party and the coordinator, of one 2-of-3
//! signature and of one 2-of-3 DKG, including the envelope (identity
//! signatures and HPKE) and the relay, exactly as the tests run them.
//!
//! The DKG sets up pairwise oblivious transfer and takes seconds, so its
//! group samples only a few runs.
//!
//! Quick run: `cargo bench -p sigil-protocol --bench ecdsa -- --quick`.

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::*;
use criterion::{Criterion, criterion_group, criterion_main};
use sigil_protocol::ecdsa::DerivationPath;

fn sign(c: &mut Criterion) {
    let mut rng = rng(2);
    let cluster = Cluster::new(3, &mut rng);
    let keys = run_ecdsa_dkg(&cluster, 2, &mut rng);
    let signers = &cluster.nodes[..2];
    let mut group = c.benchmark_group("ecdsa-sign");
    for path in ["m", "m/0/7"] {
        let path: DerivationPath = path.parse().expect("path");
        group.bench_function(format!("ecdsa-secp256k1/2-of-3/{path}"), |b| {
            b.iter(|| {
                run_ecdsa_sign(&cluster, signers, &keys, [7; 32], &path, &mut rng)
                    .expect("signature")
            })
        });
    }
    group.finish();
}

fn dkg(c: &mut Criterion) {
    let mut rng = rng(1);
    let cluster = Cluster::new(3, &mut rng);
    let mut group = c.benchmark_group("ecdsa-dkg");
    group.sample_size(10);
    group.bench_function("ecdsa-secp256k1/2-of-3", |b| {
        b.iter(|| run_ecdsa_dkg(&cluster, 2, &mut rng))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(3));
    targets = sign, dkg
}
criterion_main!(benches);
