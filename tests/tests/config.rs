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
}
