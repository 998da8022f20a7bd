//! Criterion benchmarks of Sigil's FROST protocols, in-process: the CPU
//! cost, summed over every party and the coordinator, of one DKG and of one
//! signature, including the envelope (identity signatures and HPKE) and the
//! relay, exactly as the simulation tests run them.
//!
//! Quick run: `cargo bench -p sigil-protocol --bench frost -- --quick`.

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::*;
use criterion::{Criterion, criterion_group, criterion_main};
use sigil_protocol::Scheme;

const SHAPES: [(u16, u16); 2] = [(2, 3), (3, 5)];

fn dkg(c: &mut Criterion) {
    let mut group = c.benchmark_group("dkg");
    for scheme in Scheme::FROST {
        for (t, n) in SHAPES {
            let mut rng = rng(1);
            let cluster = Cluster::new(n, &mut rng);
            group.bench_function(format!("{scheme}/{t}-of-{n}"), |b| {
                b.iter(|| run_dkg(&cluster, scheme, t, &mut rng))
            });
        }
    }
    group.finish();
}

fn sign(c: &mut Criterion) {
    let mut group = c.benchmark_group("sign");
    for scheme in Scheme::FROST {
        for (t, n) in SHAPES {
            let mut rng = rng(2);
            let cluster = Cluster::new(n, &mut rng);
            let keys = run_dkg(&cluster, scheme, t, &mut rng);
            let signers = &cluster.nodes[..usize::from(t)];
            group.bench_function(format!("{scheme}/{t}-of-{n}"), |b| {
                b.iter(|| {
                    run_sign(
                        &cluster,
                        scheme,
                        signers,
                        &keys,
                        b"benchmark message",
                        &mut rng,
                    )
                    .expect("signature")
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    targets = sign, dkg
}
criterion_main!(benches);
