//! Library side of the `sigil` command: the local development cluster
//! ([`local`]) shared by `sigil up` and the cluster test harness, the
//! client plumbing ([`connect`]) the subcommands use — connection settings
//! from flags, environment, named profiles ([`profile`]) or the data
//! directory, and coordinator failover — parsing of
//! command-line values ([`input`]), and `sigil bench`: the cluster load
//! generator ([`loadgen`]) and the in-process crypto-only baseline
//! ([`bench`]); and `sigil audit`: fetching, exporting and verifying the
//! cluster's audit logs ([`audit`]); signing intents, approvals and policy
//! documents with a client identity's key ([`intent`]); and the one way
//! every command prints its result, for people or as JSON ([`output`]), and
//! its gRPC errors with their `sigil-*` details ([`status`]); and `sigil
//! backup` / `sigil drill`: backups sealed to the offline backup key and
//! recovery drills that restore one into an isolated node ([`drill`]).

pub mod audit;
pub mod bench;
pub mod connect;
pub mod drill;
pub mod input;
pub mod intent;
pub mod loadgen;
pub mod local;
pub mod output;
pub mod profile;
pub mod status;
