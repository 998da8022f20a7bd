//! What every Sigil daemon (`sigil-node`, `sigil-coordinator`) does the same
//! way at its edges: structured logging, the shutdown signal, loading a
//! TOML config with environment overrides, and refusing an in-memory audit
//! log outside benchmarks.
//!
//! Kept apart from the daemons' libraries so both binaries boot identically
//! and operational plumbing shared by both (metrics, later) has one home.

use std::io::IsTerminal;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::de::DeserializeOwned;

/// Installs the global `tracing` subscriber, writing to stdout: filter from
/// `SIGIL_LOG` (default `info`), JSON lines when `SIGIL_LOG_FORMAT=json`.
/// Text is coloured only when stdout is a terminal and `NO_COLOR` is unset
/// ([`ansi_colours`]), so logs collected by a supervisor or a file carry no
/// escape codes; JSON never is.
pub fn init_tracing() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("SIGIL_LOG").unwrap_or_else(|_| "info".into());
    if std::env::var("SIGIL_LOG_FORMAT").as_deref() == Ok("json") {
        tracing_subscriber::fmt()
            .json()
            .with_ansi(false)
            .with_env_filter(filter)
            .init();
    } else {
        let ansi = ansi_colours(
            std::io::stdout().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        );
        tracing_subscriber::fmt()
            .with_ansi(ansi)
            .with_env_filter(filter)
            .init();
    }
}

/// Whether text logs written to a stream use ANSI colours: only on a
/// terminal, and not when `NO_COLOR` is set to a non-empty value
/// (<https://no-color.org>).
pub fn ansi_colours(stream_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stream_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Completes on Ctrl-C or (on Unix) SIGTERM: the `shutdown` future a
/// daemon's `run(listener, shutdown)` takes.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

/// Reads the TOML file at `path` (which must exist), then environment
/// variables `<env_prefix>SECTION__KEY` over it. The error names the file.
pub fn load_config<T: DeserializeOwned>(path: &Path, env_prefix: &str) -> Result<T, String> {
    Figment::new()
        .merge(Toml::file_exact(path))
        .merge(Env::prefixed(env_prefix).split("__"))
        .extract()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The environment variable that allows an in-memory audit log
/// (`audit.database = "memory"`): set to `1`, for benchmarks only. Without
/// it a daemon configured so refuses to start. An environment variable
/// rather than a config setting, so a config file copied from a benchmark
/// machine cannot carry the permission with it.
pub const BENCHMARK_IN_MEMORY_AUDIT: &str = "SIGIL_BENCHMARK_IN_MEMORY_AUDIT";

/// The value of [`BENCHMARK_IN_MEMORY_AUDIT`] in this process's environment.
pub fn benchmark_in_memory_audit_env() -> Option<std::ffi::OsString> {
    std::env::var_os(BENCHMARK_IN_MEMORY_AUDIT)
}

/// Refuses an in-memory audit log (`in_memory`) unless the benchmark
/// opt-in `opt_in` (the value of [`BENCHMARK_IN_MEMORY_AUDIT`]) is `1`.
/// The error says why and what to do.
pub fn check_in_memory_audit(
    in_memory: bool,
    opt_in: Option<&std::ffi::OsStr>,
) -> Result<(), String> {
    if !in_memory || opt_in.is_some_and(|v| v == "1") {
        return Ok(());
    }
    Err(format!(
        "audit.database = \"memory\" keeps the audit log in memory: nothing is durable and \
         the fail-closed guarantee does not hold. It is for benchmarks only and needs \
         {BENCHMARK_IN_MEMORY_AUDIT}=1 in the environment; otherwise omit audit.database \
         (default: <stem>-audit.db beside the database) or name a file"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_in_memory_audit_log_needs_the_benchmark_opt_in() {
        use std::ffi::OsStr;
        assert!(check_in_memory_audit(false, None).is_ok());
        assert!(check_in_memory_audit(false, Some(OsStr::new("0"))).is_ok());
        assert!(check_in_memory_audit(true, Some(OsStr::new("1"))).is_ok());
        for refused in [
            None,
            Some(""),
            Some("0"),
            Some("true"),
            Some("yes"),
            Some(" 1"),
        ] {
            let err = check_in_memory_audit(true, refused.map(OsStr::new))
                .expect_err("an in-memory audit log without the opt-in");
            assert!(err.contains(BENCHMARK_IN_MEMORY_AUDIT), "{err}");
            assert!(err.contains("benchmarks only"), "{err}");
        }
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Sample {
        name: String,
        section: Section,
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Section {
        size: u32,
    }

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(ansi_colours(true, None));
        assert!(ansi_colours(true, Some(OsStr::new(""))));
        assert!(!ansi_colours(true, Some(OsStr::new("1"))));
        assert!(!ansi_colours(false, None));
        assert!(!ansi_colours(false, Some(OsStr::new(""))));
    }

    #[test]
    fn a_missing_file_is_named_and_a_bad_one_explained() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sample.toml");
        let err = load_config::<Sample>(&path, "SIGIL_DAEMON_TEST_").expect_err("missing");
        assert!(err.contains("sample.toml"), "{err}");

        std::fs::write(&path, "name = \"a\"\n[section]\nsize = \"big\"\n").expect("write");
        let err = load_config::<Sample>(&path, "SIGIL_DAEMON_TEST_").expect_err("bad type");
        assert!(err.contains("size"), "{err}");

        std::fs::write(&path, "name = \"a\"\n[section]\nsize = 3\n").expect("write");
        assert_eq!(
            load_config::<Sample>(&path, "SIGIL_DAEMON_TEST_").expect("load"),
            Sample {
                name: "a".into(),
                section: Section { size: 3 }
            }
        );
    }
}
