//! `sigil audit`: fetching, exporting and verifying the audit logs of a
//! cluster, as an auditor (role `auditor`, read-only) does it.
//!
//! The logs come from one of three places — a live cluster through the
//! coordinator's `Audit` service ([`fetch_live`]), a directory of exported
//! JSON-lines files ([`load_dir`], written by [`write_dir`]), or a process's
//! SQLite database read directly ([`verify_db`]) — and are checked the same
//! way ([`verify`]): every chain is recomputed from the raw records with
//! [`sigil_audit::verify_log`], every signed head is checked against the
//! cluster CA, and the logs are cross-checked with
//! [`sigil_audit::cross_check`], and every log is held against the heads
//! other processes recorded seeing of it ([`sigil_audit::check_seen_heads`]:
//! a tail deleted together with its own heads). The coordinator relays
//! node logs but cannot forge them: each node's chain must match that
//! node's own signed heads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;
use sigil_audit::{
    AuditLog, AuditOptions, COORDINATOR_PROCESS, HeadSignature, HeadSigner, HeadVerifier, NodeLog,
    ProcessLog, Record, SignError, SignedHead, TlsHeadVerifier, check_seen_heads, cross_check,
    node_id_of, parse_heads_jsonl, parse_jsonl, verify_log,
};
use sigil_proto::audit::{head_from_wire, record_from_wire};
use sigil_proto::v1 as pb;
use sigil_proto::v1::audit_client::AuditClient;
use sigil_tls::TrustDomain;
use tonic::transport::Channel;

/// Why audit data could not be obtained at all (as opposed to findings
/// about the data).
#[derive(Debug, thiserror::Error)]
pub enum AuditCliError {
    #[error("{0}")]
    Rpc(#[from] tonic::Status),
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("trust anchors: {0}")]
    Trust(#[from] sigil_audit::TrustError),
    #[error("audit database: {0}")]
    Audit(#[from] sigil_audit::AuditError),
    #[error("{0}")]
    Other(String),
}

/// One inconsistency, or a log that could not be obtained.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub process: String,
    pub sequence: u64,
    /// A [`sigil_audit::FindingKind`] (`hash_mismatch`, `chain_break`, …),
    /// or `unavailable` (a log that could not be fetched), `undecodable`
    /// (a record that is not a valid record), `missing_log`.
    pub kind: String,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.process, self.sequence, self.kind, self.reason
        )
    }
}

impl From<&sigil_audit::Finding> for Problem {
    fn from(f: &sigil_audit::Finding) -> Self {
        Self {
            process: f.process.clone(),
            sequence: f.sequence,
            kind: f.kind.to_string(),
            reason: f.reason.clone(),
        }
    }
}

/// The logs of a cluster (or part of one), by process name.
#[derive(Clone, Debug, Default)]
pub struct AuditData {
    pub records: BTreeMap<String, Vec<Record>>,
    pub heads: BTreeMap<String, Vec<SignedHead>>,
    /// Logs or records that could not be obtained.
    pub problems: Vec<Problem>,
}

impl AuditData {
    /// Every process with a log here.
    pub fn processes(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .records
            .keys()
            .chain(self.heads.keys())
            .cloned()
            .collect();
        names.sort_by_key(|p| process_order(p));
        names.dedup();
        names
    }
}

/// Sorts `coordinator` first, then nodes by id, then anything else.
pub fn process_order(p: &str) -> (u8, u32, String) {
    if p == COORDINATOR_PROCESS {
        (0, 0, String::new())
    } else if let Some(id) = node_id_of(p) {
        (1, u32::from(id), String::new())
    } else {
        (2, 0, p.to_owned())
    }
}

/// The result of [`verify`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct Verification {
    /// Every process verified.
    pub processes: Vec<String>,
    pub records: u64,
    pub heads: u64,
    pub heads_matched: u64,
    /// Chains and heads, then the cross-check; in the order found.
    pub problems: Vec<Problem>,
}

impl Verification {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The first problem found in `process`'s log.
    pub fn first_for(&self, process: &str) -> Option<&Problem> {
        self.problems.iter().find(|p| p.process == process)
    }
}

/// Verifies every log of `data`, cross-checks them, and holds each against
/// the heads the others saw of it.
pub fn verify(data: &AuditData, verifier: &dyn HeadVerifier) -> Verification {
    let mut out = Verification {
        processes: data.processes(),
        problems: data.problems.clone(),
        ..Verification::default()
    };
    let empty: Vec<Record> = Vec::new();
    let no_heads: Vec<SignedHead> = Vec::new();
    for process in &out.processes {
        let records = data.records.get(process).unwrap_or(&empty);
        let heads = data.heads.get(process).unwrap_or(&no_heads);
        let report = verify_log(process, records, heads, verifier);
        out.records += report.records;
        out.heads += report.heads;
        out.heads_matched += report.heads_matched;
        out.problems
            .extend(report.findings.iter().map(Problem::from));
    }
    match data.records.get(COORDINATOR_PROCESS) {
        Some(coordinator) => {
            let nodes: Vec<NodeLog<'_>> = data
                .records
                .iter()
                .filter_map(|(p, records)| {
                    node_id_of(p).map(|node_id| NodeLog {
                        node_id,
                        records: records.as_slice(),
                    })
                })
                .collect();
            let report = cross_check(coordinator, &nodes);
            out.problems
                .extend(report.findings.iter().map(Problem::from));
        }
        None if !out.processes.is_empty() => out.problems.push(Problem {
            process: COORDINATOR_PROCESS.to_owned(),
            sequence: 0,
            kind: "missing_log".into(),
            reason: "the coordinator's log is missing; the logs cannot be cross-checked".into(),
        }),
        None => {}
    }
    let logs: Vec<ProcessLog<'_>> = out
        .processes
        .iter()
        .map(|process| ProcessLog {
            process,
            records: data.records.get(process).unwrap_or(&empty),
            heads: data.heads.get(process).unwrap_or(&no_heads),
        })
        .collect();
    let report = check_seen_heads(&logs);
    out.problems
        .extend(report.findings.iter().map(Problem::from));
    out
}

/// A verifier trusting the CA certificates of `ca_file` in `domain`.
pub fn verifier(ca_file: &Path, domain: &TrustDomain) -> Result<TlsHeadVerifier, AuditCliError> {
    Ok(TlsHeadVerifier::from_ca_file(ca_file, domain.clone())?)
}

/// Everything the coordinator's `Audit` service holds and relays: every
/// process's records and every signed head. A process that cannot be read
/// is a problem in the result, not an error.
pub async fn fetch_live(channel: Channel) -> Result<AuditData, AuditCliError> {
    let mut client = AuditClient::new(channel);
    let overview = client
        .get_signed_heads(pb::GetSignedHeadsRequest::default())
        .await?
        .into_inner();
    let mut data = AuditData::default();
    for process in &overview.processes {
        match fetch_process(&mut client, process).await {
            Ok((records, heads)) => {
                let mut decoded = Vec::with_capacity(records.len());
                for r in records {
                    match record_from_wire(r) {
                        Ok(r) => decoded.push(r),
                        Err(e) => data.problems.push(Problem {
                            process: process.clone(),
                            sequence: e.sequence,
                            kind: "undecodable".into(),
                            reason: e.reason,
                        }),
                    }
                }
                let mut decoded_heads = Vec::with_capacity(heads.len());
                for h in heads {
                    match head_from_wire(h) {
                        Ok(h) => decoded_heads.push(h),
                        Err(e) => data.problems.push(Problem {
                            process: process.clone(),
                            sequence: e.sequence,
                            kind: "undecodable".into(),
                            reason: format!("signed head: {}", e.reason),
                        }),
                    }
                }
                data.records.insert(process.clone(), decoded);
                data.heads.insert(process.clone(), decoded_heads);
            }
            Err(status) => data.problems.push(Problem {
                process: process.clone(),
                sequence: 0,
                kind: "unavailable".into(),
                reason: format!("log not fetched: {:?}: {}", status.code(), status.message()),
            }),
        }
    }
    Ok(data)
}

async fn fetch_process(
    client: &mut AuditClient<Channel>,
    process: &str,
) -> Result<(Vec<pb::AuditRecord>, Vec<pb::SignedHead>), tonic::Status> {
    let mut stream = client
        .export_records(pb::QueryRecordsRequest {
            process: process.to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut records = Vec::new();
    while let Some(r) = stream.next().await {
        records.push(r?);
    }
    let heads = client
        .get_signed_heads(pb::GetSignedHeadsRequest {
            process: process.to_owned(),
            all: true,
        })
        .await?
        .into_inner()
        .heads;
    Ok((records, heads))
}

/// The file of `process`'s records in an export directory.
pub fn records_file(dir: &Path, process: &str) -> PathBuf {
    dir.join(format!("{process}.records.jsonl"))
}

/// The file of `process`'s signed heads in an export directory.
pub fn heads_file(dir: &Path, process: &str) -> PathBuf {
    dir.join(format!("{process}.heads.jsonl"))
}

fn write_lines(path: &Path, lines: impl Iterator<Item = String>) -> Result<(), AuditCliError> {
    use std::io::Write;
    let fail = |e: std::io::Error| AuditCliError::File {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let file = std::fs::File::create(path).map_err(fail)?;
    let mut out = std::io::BufWriter::new(file);
    for line in lines {
        writeln!(out, "{line}").map_err(fail)?;
    }
    out.flush().map_err(fail)?;
    out.get_ref().sync_all().map_err(fail)
}

/// Writes `<process>.records.jsonl` and `<process>.heads.jsonl` for every
/// process of `data` into `dir` (created if needed). Returns the files written.
pub fn write_dir(data: &AuditData, dir: &Path) -> Result<Vec<PathBuf>, AuditCliError> {
    std::fs::create_dir_all(dir).map_err(|e| AuditCliError::File {
        path: dir.to_owned(),
        reason: e.to_string(),
    })?;
    let mut written = Vec::new();
    for process in data.processes() {
        let records = records_file(dir, &process);
        write_lines(
            &records,
            data.records
                .get(&process)
                .into_iter()
                .flatten()
                .map(Record::to_json_line),
        )?;
        let heads = heads_file(dir, &process);
        write_lines(
            &heads,
            data.heads
                .get(&process)
                .into_iter()
                .flatten()
                .map(SignedHead::to_json_line),
        )?;
        written.push(records);
        written.push(heads);
    }
    Ok(written)
}

/// Reads an export directory: every `<process>.records.jsonl` and
/// `<process>.heads.jsonl` in it. A file that does not parse is a problem
/// of that process (its log is then left out).
pub fn load_dir(dir: &Path) -> Result<AuditData, AuditCliError> {
    let entries = std::fs::read_dir(dir).map_err(|e| AuditCliError::File {
        path: dir.to_owned(),
        reason: e.to_string(),
    })?;
    let mut data = AuditData::default();
    let mut names: Vec<String> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| AuditCliError::File {
            path: dir.to_owned(),
            reason: e.to_string(),
        })?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let open = || {
            std::fs::File::open(&path)
                .map(std::io::BufReader::new)
                .map_err(|e| AuditCliError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                })
        };
        if let Some(process) = name.strip_suffix(".records.jsonl") {
            match parse_jsonl(open()?) {
                Ok(records) => {
                    data.records.insert(process.to_owned(), records);
                }
                Err(e) => data.problems.push(Problem {
                    process: process.to_owned(),
                    sequence: 0,
                    kind: "undecodable".into(),
                    reason: format!("{}: {e}", path.display()),
                }),
            }
        } else if let Some(process) = name.strip_suffix(".heads.jsonl") {
            match parse_heads_jsonl(open()?) {
                Ok(heads) => {
                    data.heads.insert(process.to_owned(), heads);
                }
                Err(e) => data.problems.push(Problem {
                    process: process.to_owned(),
                    sequence: 0,
                    kind: "undecodable".into(),
                    reason: format!("{}: {e}", path.display()),
                }),
            }
        }
    }
    if data.records.is_empty() && data.heads.is_empty() && data.problems.is_empty() {
        return Err(AuditCliError::Other(format!(
            "{} holds no *.records.jsonl or *.heads.jsonl files",
            dir.display()
        )));
    }
    Ok(data)
}

/// Reading a database never signs: a signer that refuses.
struct NoSigner;

impl HeadSigner for NoSigner {
    fn sign_head(&self, _message: &[u8]) -> Result<HeadSignature, SignError> {
        Err(SignError("read-only audit access".into()))
    }
}

/// Opens `process`'s log in the SQLite database at `path`, read-only.
async fn open_db(path: &Path, process: &str) -> Result<AuditLog, AuditCliError> {
    if !path.exists() {
        return Err(AuditCliError::File {
            path: path.to_owned(),
            reason: "no such file".into(),
        });
    }
    Ok(AuditLog::open_read_only(path, AuditOptions::new(process), Arc::new(NoSigner)).await?)
}

/// Reads the logs of several processes straight from their SQLite
/// databases (`(process, path)`), read-only, for [`verify`] with the
/// cross-check.
pub async fn load_dbs(dbs: &[(String, PathBuf)]) -> Result<AuditData, AuditCliError> {
    let mut data = AuditData::default();
    for (process, path) in dbs {
        let log = open_db(path, process).await?;
        let mut records = Vec::new();
        let mut filter = sigil_audit::Filter::default().limit(sigil_audit::MAX_LIMIT);
        loop {
            let page = log.query(&filter).await?;
            let Some(last) = page.last() else { break };
            filter.after_sequence = Some(last.sequence);
            records.extend(page);
        }
        data.heads
            .insert(process.clone(), log.all_signed_heads().await?);
        data.records.insert(process.clone(), records);
    }
    Ok(data)
}

/// Verifies `process`'s log directly in its SQLite database (opened
/// read-only), e.g. a node's disk under investigation. Rows that no longer
/// decode are problems too. No cross-check: one log only.
pub async fn verify_db(
    path: &Path,
    process: &str,
    verifier: &dyn HeadVerifier,
) -> Result<Verification, AuditCliError> {
    let log = open_db(path, process).await?;
    let report = log.verify(verifier).await?;
    Ok(Verification {
        processes: vec![process.to_owned()],
        records: report.records,
        heads: report.heads,
        heads_matched: report.heads_matched,
        problems: report.findings.iter().map(Problem::from).collect(),
    })
}
