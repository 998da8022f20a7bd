//! Library side of the `sigil` command: the local development cluster
//! ([`local`]) shared by `sigil up` and the cluster test harness, the
//! client plumbing ([`connect`]) the subcommands use, parsing of
//! command-line values ([`input`]), and `sigil bench`: the cluster load
//! generator ([`loadgen`]) and the in-process crypto-only baseline
//! ([`bench`]); and `sigil audit`: fetching, exporting and verifying the
//! cluster's audit logs ([`audit`]).

pub mod audit;
pub mod bench;
pub mod connect;
pub mod input;
pub mod loadgen;
pub mod local;
