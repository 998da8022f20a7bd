//! The documented example configurations in `deploy/` must load.

use std::path::Path;

use sigil_coordinator::CoordinatorConfig;
use sigil_coordinator::roles::Role;
use sigil_node::NodeConfig;

fn deploy(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file)
}

#[test]
fn node_example_loads() {
    let c = NodeConfig::load(&deploy("node.example.toml")).expect("node example");
    assert_eq!((c.node_id, c.zone.as_str()), (1, "eu-west-1a"));
    assert_eq!(c.kek_path(), Path::new("/var/lib/sigil/keys/kek.hex"));
    assert!(c.backup.is_some_and(|b| b.recipient_key().is_ok()));
}

#[test]
fn coordinator_example_loads() {
    let c =
        CoordinatorConfig::load(&deploy("coordinator.example.toml")).expect("coordinator example");
    assert_eq!(c.nodes.len(), 3);
    assert_eq!(
        c.clients
            .iter()
            .find(|g| g.name == "secops")
            .map(|g| g.roles.clone()),
        Some(vec![Role::Operator])
    );
}

#[test]
fn invalid_configs_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.toml");
    let text = std::fs::read_to_string(deploy("coordinator.example.toml")).expect("read");
    std::fs::write(&path, text.replacen("id = 2", "id = 1", 1)).expect("write");
    let err = CoordinatorConfig::load(&path).expect_err("duplicate node id accepted");
    assert!(
        err.to_string().contains("node id 1 is configured twice"),
        "{err}"
    );

    let text = std::fs::read_to_string(deploy("node.example.toml")).expect("read");
    std::fs::write(&path, text.replace("zone = ", "zonee = ")).expect("write");
    let err = NodeConfig::load(&path).expect_err("unknown field accepted");
    assert!(err.to_string().contains("zonee"), "{err}");

    let zeros = format!("recipient = \"{}\"", "00".repeat(32));
    let edited = replace_line(&text, "recipient = ", &zeros);
    std::fs::write(&path, edited).expect("write");
    let err = NodeConfig::load(&path).expect_err("an unusable backup recipient accepted");
    assert!(err.to_string().contains("backup.recipient"), "{err}");
}

#[test]
fn audit_settings_default_resolve_and_validate() {
    let node = NodeConfig::load(&deploy("node.example.toml")).expect("node example");
    assert_eq!(node.audit.head_interval, std::time::Duration::from_secs(60));
    assert_eq!(
        node.audit.database, None,
        "default: node-audit.db beside the node database"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("n.toml");
    let text = std::fs::read_to_string(deploy("node.example.toml")).expect("read");
    for (setting, expected) in [
        ("database = \"audit.db\"", Some(dir.path().join("audit.db"))),
        ("database = \"memory\"", Some("memory".into())),
    ] {
        let edited = text.replace("# database = \"/var/lib/sigil/node-audit.db\"", setting);
        std::fs::write(&path, edited).expect("write");
        let c = NodeConfig::load(&path).expect("load");
        assert_eq!(
            c.audit.database.map(std::path::PathBuf::from),
            expected,
            "{setting}"
        );
    }
    std::fs::write(
        &path,
        text.replace("head_interval = \"60s\"", "head_interval = \"1ms\""),
    )
    .expect("write");
    let err = NodeConfig::load(&path).expect_err("a 1 ms head interval");
    assert!(err.to_string().contains("audit.head_interval"), "{err}");

    let text = std::fs::read_to_string(deploy("coordinator.example.toml")).expect("read");
    std::fs::write(
        &path,
        text.replace("busy_timeout = \"5s\"", "busy_timeout = \"250ms\""),
    )
    .expect("write");
    let c = CoordinatorConfig::load(&path).expect("load");
    assert_eq!(c.audit.busy_timeout, std::time::Duration::from_millis(250));
}

/// `text` with the line starting with `prefix` replaced by `line`.
fn replace_line(text: &str, prefix: &str, line: &str) -> String {
    text.lines()
        .map(|l| if l.starts_with(prefix) { line } else { l })
        .collect::<Vec<_>>()
        .join("\n")
}
