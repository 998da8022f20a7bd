//! The `sigil` binary against a cluster it did not start in its own data
//! directory: a `sigil up --ephemeral-ports` child process serves, and
//! commands run from another, empty data directory reach it through
//! `--coordinator`/`--ca`/`--cert`/`--cert-key`, the `SIGIL_*` variables,
//! or named profiles (`SIGIL_PROFILES` points into the test's directory);
//! several coordinators fail over past a dead one; a missing setting is
//! named; `sigil up` writes the `local` profile.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

/// Every variable that could carry settings in from the environment the
/// tests run in.
const SETTINGS_ENV: &[&str] = &[
    "SIGIL_DATA_DIR",
    "SIGIL_COORDINATOR",
    "SIGIL_CA",
    "SIGIL_CERT",
    "SIGIL_KEY",
    "SIGIL_PROFILE",
];

/// A `sigil` command with a clean environment and the test's profiles file.
fn sigil_command(profiles: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sigil"));
    for var in SETTINGS_ENV {
        cmd.env_remove(var);
    }
    cmd.env("SIGIL_PROFILES", profiles).env("SIGIL_LOG", "warn");
    cmd
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A local cluster run by `sigil up --ephemeral-ports` as a child process;
/// killed when dropped.
struct Up {
    child: Child,
    dir: tempfile::TempDir,
    /// `sigil up`'s data directory.
    data_dir: PathBuf,
    /// The profiles file of every command of the test.
    profiles: PathBuf,
    coordinator: String,
    /// What `sigil up --json` printed.
    printed: Value,
}

impl Up {
    /// Starts the cluster and reads the line `sigil up --json` prints once
    /// every server listens (no polling: the read blocks until then).
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("cluster");
        let profiles = dir.path().join("config").join("profiles.toml");
        let mut child = sigil_command(&profiles)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--json", "up", "--ephemeral-ports"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run sigil up");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read what sigil up prints");
        let printed: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("sigil up printed no JSON line ({e}): {line:?}"));
        let coordinator = printed["coordinator"]
            .as_str()
            .expect("coordinator address")
            .to_owned();
        Self {
            child,
            dir,
            data_dir,
            profiles,
            coordinator,
            printed,
        }
    }

    fn pki(&self, file: &str) -> String {
        self.data_dir
            .join("pki")
            .join(file)
            .to_string_lossy()
            .into_owned()
    }

    /// `--ca`, `--cert`, `--cert-key` of dev client `name`.
    fn tls_flags(&self, name: &str) -> Vec<String> {
        vec![
            "--ca".into(),
            self.pki("ca.pem"),
            "--cert".into(),
            self.pki(&format!("client-{name}.pem")),
            "--cert-key".into(),
            self.pki(&format!("client-{name}.key")),
        ]
    }

    /// A fresh, empty data directory: nothing of the cluster in it.
    fn elsewhere(&self) -> PathBuf {
        let dir = tempfile::tempdir_in(self.dir.path())
            .expect("tempdir")
            .keep();
        assert!(std::fs::read_dir(&dir).expect("read dir").next().is_none());
        dir
    }

    /// Runs `sigil --data-dir <data_dir> ARGS` (with `envs` set).
    fn run(&self, data_dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
        sigil_command(&self.profiles)
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .envs(envs.iter().copied())
            .output()
            .expect("run sigil")
    }

    /// Runs a command that must succeed; with `--json` among `args`, its JSON.
    fn ok(&self, data_dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> (Value, Output) {
        let out = self.run(data_dir, args, envs);
        assert!(
            out.status.success(),
            "sigil {args:?} failed: {}",
            describe(&out)
        );
        let value = if args.contains(&"--json") {
            serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", describe(&out)))
        } else {
            Value::Null
        };
        (value, out)
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An address nothing listens on: a port the OS just handed out, released.
fn dead_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr.to_string()
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Creates a key as `operator` (flags) and signs with it as `signer`:
/// returns the signing output.
fn create_and_sign(up: &Up, dir: &Path, coordinators: &[&str]) -> Value {
    let mut args: Vec<&str> = Vec::new();
    for c in coordinators {
        args.extend(["--coordinator", c]);
    }
    let operator = up.tls_flags("operator");
    let signer = up.tls_flags("signer");
    let mut create = args.clone();
    create.extend(as_strs(&operator));
    create.extend([
        "--json",
        "key",
        "create",
        "--scheme",
        "frost-ed25519",
        "--threshold",
        "2",
    ]);
    let (key, _) = up.ok(dir, &create, &[]);
    let key_id = key["key_id"].as_str().expect("key id").to_owned();

    let mut list = args.clone();
    list.extend(as_strs(&operator));
    list.extend(["--json", "key", "list"]);
    let (keys, _) = up.ok(dir, &list, &[]);
    assert!(
        keys["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .any(|k| k["key_id"] == key_id.as_str()),
        "{keys}"
    );

    let mut sign = args;
    sign.extend(as_strs(&signer));
    sign.extend(["--json", "sign", "--key", &key_id, "--message-hex", "0102"]);
    let (signed, _) = up.ok(dir, &sign, &[]);
    assert_eq!(signed["key_id"], key_id.as_str());
    assert_eq!(
        signed["signers"].as_array().map(Vec::len),
        Some(2),
        "{signed}"
    );
    signed
}

/// (a) Flags and environment alone reach the cluster from an empty data
/// directory: keys, signing, and `--as` left aside for a certificate; (c)
/// a dead coordinator first, the live one second: the command fails over
/// and says which one failed; `health` checks both and the nodes through
/// the coordinator.
#[test]
fn flags_and_environment_reach_a_cluster_without_its_data_directory_and_fail_over() {
    let up = Up::start();
    let dir = up.elsewhere();

    // (a) Flags.
    let signed = create_and_sign(&up, &dir, &[&up.coordinator]);
    let key_id = signed["key_id"].as_str().unwrap().to_owned();
    assert!(
        !dir.join("cluster.json").exists(),
        "no cluster.json was needed"
    );

    // The same with SIGIL_* variables; `--as` does not change the identity
    // a certificate names (the warning says so).
    let (ca, cert, key) = (
        up.pki("ca.pem"),
        up.pki("client-signer.pem"),
        up.pki("client-signer.key"),
    );
    let env = [
        ("SIGIL_COORDINATOR", up.coordinator.as_str()),
        ("SIGIL_CA", &ca),
        ("SIGIL_CERT", &cert),
        ("SIGIL_KEY", &key),
    ];
    let (again, out) = up.ok(
        &dir,
        &[
            "--as",
            "operator",
            "--json",
            "sign",
            "--key",
            &key_id,
            "--message-hex",
            "0102",
            "--idempotency-key",
            signed["idempotency_key"].as_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(again["replayed"], true, "{again}");
    assert_eq!(again["signature"], signed["signature"]);
    assert!(
        stderr(&out).contains("--as operator does not apply"),
        "{}",
        describe(&out)
    );

    // (c) Failover: comma-separated, a dead coordinator first.
    let dead = dead_address();
    let both = format!("{dead},{}", up.coordinator);
    let mut args = vec!["--coordinator", &both];
    let signer = up.tls_flags("signer");
    args.extend(as_strs(&signer));
    args.extend(["--json", "sign", "--key", &key_id, "--message-hex", "0304"]);
    let (failed_over, out) = up.ok(&dir, &args, &[]);
    assert_eq!(failed_over["signers"].as_array().map(Vec::len), Some(2));
    let warned = stderr(&out);
    assert!(
        warned.contains(&format!("coordinator {dead} failed"))
            && warned.contains(&format!("trying the next one, {}", up.coordinator)),
        "{}",
        describe(&out)
    );

    // Repeated --coordinator, for keys, signing and `nodes` alike.
    create_and_sign(&up, &dir, &[&dead, &up.coordinator]);
    let operator = up.tls_flags("operator");
    let mut nodes = vec!["--coordinator", &dead, "--coordinator", &up.coordinator];
    nodes.extend(as_strs(&operator));
    nodes.extend(["--json", "nodes"]);
    let (listed, _) = up.ok(&dir, &nodes, &[]);
    assert_eq!(
        listed["nodes"].as_array().map(Vec::len),
        Some(3),
        "{listed}"
    );

    // `health` checks every coordinator given (the dead one fails it) and
    // the nodes as the coordinator sees them.
    let mut health = vec!["--coordinator", &both];
    health.extend(as_strs(&operator));
    health.extend(["--json", "health"]);
    let out = up.run(&dir, &health, &[]);
    assert!(!out.status.success(), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("health JSON");
    assert_eq!(report[format!("coordinator@{}", up.coordinator)], "SERVING");
    assert_ne!(report[format!("coordinator@{dead}")], "SERVING");
    for n in 1..=3 {
        assert_eq!(report[format!("node-{n}")], "SERVING", "{report}");
    }
    let mut health = vec!["--coordinator", &up.coordinator];
    health.extend(as_strs(&operator));
    health.extend(["--json", "health"]);
    let (report, _) = up.ok(&dir, &health, &[]);
    assert_eq!(report["coordinator"], "SERVING", "{report}");
    assert_eq!(report["node-3"], "SERVING", "{report}");

    // Nothing answers: every coordinator tried is named.
    let other = dead_address();
    let mut args = vec!["--coordinator", &dead, "--coordinator", &other];
    args.extend(as_strs(&operator));
    args.extend(["key", "list"]);
    let out = up.run(&dir, &args, &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("no coordinator answers") && err.contains(&dead) && err.contains(&other),
        "{}",
        describe(&out)
    );
}

/// (b) Profiles: one certificate, or a PKI directory whose identities the
/// commands' roles pick; `use`, `--profile`, `list`, `remove`; flags
/// override a profile's setting. (e) `sigil up` wrote the `local` profile.
#[test]
fn profiles_reach_a_cluster_and_sigil_up_writes_the_local_one() {
    let up = Up::start();
    let dir = up.elsewhere();

    // (e) The `local` profile of the cluster `sigil up` started; not in use.
    assert_eq!(up.printed["profile"]["name"], "local", "{}", up.printed);
    let (listed, _) = up.ok(&dir, &["--json", "profile", "list"], &[]);
    assert_eq!(listed["current"], Value::Null, "{listed}");
    let local = &listed["profiles"][0];
    assert_eq!(local["name"], "local", "{listed}");
    assert_eq!(
        local["coordinators"],
        serde_json::json!([up.coordinator]),
        "{listed}"
    );
    let pki = std::path::absolute(up.data_dir.join("pki")).unwrap();
    assert_eq!(local["pki_dir"], pki.to_string_lossy().as_ref());
    assert_eq!(local["nodes"].as_array().map(Vec::len), Some(3), "{listed}");
    let (health, _) = up.ok(&dir, &["--profile", "local", "--json", "health"], &[]);
    for process in ["coordinator", "node-1", "node-2", "node-3"] {
        assert_eq!(health[process], "SERVING", "{health}");
    }

    // (b) A PKI-directory profile in use: each command acts as its role.
    let pki_dir = pki.to_string_lossy().into_owned();
    up.ok(
        &dir,
        &[
            "profile",
            "add",
            "ops",
            "--coordinator",
            &dead_address(),
            "--coordinator",
            &up.coordinator,
            "--pki-dir",
            &pki_dir,
        ],
        &[],
    );
    up.ok(&dir, &["profile", "use", "ops"], &[]);
    let (key, _) = up.ok(
        &dir,
        &[
            "--json",
            "key",
            "create",
            "--scheme",
            "frost-secp256k1",
            "--threshold",
            "2",
        ],
        &[],
    );
    let key_id = key["key_id"].as_str().expect("key id").to_owned();
    let (signed, _) = up.ok(
        &dir,
        &["--json", "sign", "--key", &key_id, "--message-hex", "0a0b"],
        &[],
    );
    assert_eq!(signed["signers"].as_array().map(Vec::len), Some(2));
    // `--as` picks another identity of the directory: signer may not list keys.
    let out = up.run(&dir, &["--as", "signer", "key", "list"], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("lacks role operator"),
        "{}",
        describe(&out)
    );

    // A one-certificate profile, chosen per command with --profile and
    // SIGIL_PROFILE while `ops` stays in use.
    let signer = up.tls_flags("signer");
    let mut add = vec!["profile", "add", "pay", "--coordinator", &up.coordinator];
    add.extend(as_strs(&signer));
    up.ok(&dir, &add, &[]);
    let sign = ["--json", "sign", "--key", &key_id, "--message-hex", "0c0d"];
    let mut with_flag = vec!["--profile", "pay"];
    with_flag.extend(sign);
    up.ok(&dir, &with_flag, &[]);
    up.ok(&dir, &sign, &[("SIGIL_PROFILE", "pay")]);
    let out = up.run(&dir, &["--profile", "pay", "key", "list"], &[]);
    assert!(
        stderr(&out).contains("client/signer lacks role operator"),
        "{}",
        describe(&out)
    );
    // Flags override the profile's setting: the operator's certificate.
    let operator = up.tls_flags("operator");
    let mut list = vec!["--profile", "pay"];
    list.extend(as_strs(&operator));
    list.extend(["--json", "key", "list"]);
    let (keys, _) = up.ok(&dir, &list, &[]);
    assert_eq!(keys["keys"].as_array().map(Vec::len), Some(1), "{keys}");

    let (listed, _) = up.ok(&dir, &["--json", "profile", "list"], &[]);
    assert_eq!(listed["current"], "ops");
    let names: Vec<&str> = listed["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["local", "ops", "pay"]);
    let out = up.run(&dir, &["profile", "list"], &[]);
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(human.lines().any(|l| l.starts_with("* ops")), "{human}");

    // Removing the profile in use: back to the (empty) data directory.
    up.ok(&dir, &["profile", "remove", "ops"], &[]);
    let out = up.run(&dir, &["key", "list"], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no coordinator address"),
        "{}",
        describe(&out)
    );
    let out = up.run(&dir, &["--profile", "ops", "key", "list"], &[]);
    assert!(
        stderr(&out).contains("no profile \"ops\""),
        "{}",
        describe(&out)
    );
}

/// (d) A missing setting is named, with every way to give it.
#[test]
fn a_missing_setting_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let profiles = dir.path().join("profiles.toml");
    let pki_home = dir.path().join("pki-home");
    let out = sigil_command(&profiles)
        .arg("--data-dir")
        .arg(&pki_home)
        .args(["dev", "pki"])
        .output()
        .expect("run sigil");
    assert!(out.status.success(), "{}", describe(&out));
    let pki = |f: &str| pki_home.join("pki").join(f).to_string_lossy().into_owned();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let run = |args: &[&str]| {
        sigil_command(&profiles)
            .arg("--data-dir")
            .arg(&empty)
            .args(args)
            .output()
            .expect("run sigil")
    };
    let fails_with = |args: &[&str], expected: &str| {
        let out = run(args);
        assert!(!out.status.success(), "{}", describe(&out));
        assert!(
            stderr(&out).contains(expected),
            "expected {expected:?}: {}",
            describe(&out)
        );
    };
    fails_with(
        &["key", "list"],
        "no coordinator address: pass --coordinator, set SIGIL_COORDINATOR, or use a profile \
         (`sigil profile add`)",
    );
    let (cert, key, ca) = (
        pki("client-signer.pem"),
        pki("client-signer.key"),
        pki("ca.pem"),
    );
    fails_with(
        &[
            "--coordinator",
            "127.0.0.1:1",
            "--cert",
            &cert,
            "--cert-key",
            &key,
            "key",
            "list",
        ],
        "no CA certificate: pass --ca, set SIGIL_CA, or use a profile",
    );
    fails_with(
        &["--coordinator", "127.0.0.1:1", "--ca", &ca, "key", "list"],
        "no client certificate: pass --cert and --cert-key, set SIGIL_CERT and SIGIL_KEY",
    );
    fails_with(
        &[
            "--coordinator",
            "127.0.0.1:1",
            "--ca",
            &ca,
            "--cert",
            &cert,
            "key",
            "list",
        ],
        "needs its private key: pass --cert-key or set SIGIL_KEY",
    );
    fails_with(&["--profile", "prod", "key", "list"], "no profile \"prod\"");
    // `profile add` names what it lacks too.
    fails_with(
        &[
            "profile",
            "add",
            "prod",
            "--ca",
            &ca,
            "--cert",
            &cert,
            "--cert-key",
            &key,
        ],
        "no coordinator address",
    );
    fails_with(
        &[
            "profile",
            "add",
            "prod",
            "--coordinator",
            "c:1",
            "--ca",
            &ca,
        ],
        "no client identity: pass --cert and --cert-key",
    );
    // A drill needs the data directory itself.
    fails_with(
        &["drill", "--key", "k", "--backup", "b"],
        "`sigil drill` needs the data directory of a local cluster",
    );
}
