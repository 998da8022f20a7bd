//! What every Sigil daemon (`sigil-node`, `sigil-coordinator`) does the same
//! way at its edges: structured logging, the shutdown signal, and loading a
//! TOML config with environment overrides.
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

#[cfg(test)]
mod tests {
    use super::*;

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
