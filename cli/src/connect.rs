//! How CLI commands reach a cluster: the coordinator (or a node) over mTLS
//! with one of the client identities of the data directory.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sigil_tls::client::{DialOptions, channel};
use sigil_tls::{Identity, ReloadableTls, TlsFiles, TrustDomain};
use tonic::transport::Channel;

use crate::local::{ClusterInfo, LocalError};

/// A client identity and the cluster it talks to.
#[derive(Debug, Clone)]
pub struct ClientContext {
    pub info: ClusterInfo,
    pub tls: Arc<ReloadableTls>,
}

impl ClientContext {
    /// Loads `<data_dir>/cluster.json` and the TLS files of client `name`.
    pub fn load(data_dir: &Path, name: &str) -> Result<Self, LocalError> {
        let info = ClusterInfo::load(data_dir).map_err(|e| {
            LocalError::Layout(format!(
                "no running local cluster found in {} ({e}); start one with `sigil up`",
                data_dir.display()
            ))
        })?;
        let files = info.clients.get(name).cloned().ok_or_else(|| {
            LocalError::Layout(format!(
                "no client identity {name:?} in {}",
                data_dir.display()
            ))
        })?;
        Self::with_files(info, files)
    }

    pub fn with_files(info: ClusterInfo, files: TlsFiles) -> Result<Self, LocalError> {
        sigil_tls::install_crypto_provider();
        let tls = ReloadableTls::load(files, info.trust_domain.clone())?;
        Ok(Self { info, tls })
    }

    pub fn domain(&self) -> &TrustDomain {
        &self.info.trust_domain
    }

    fn dial(&self, addr: &str, expected: Identity) -> Result<Channel, LocalError> {
        let opts = DialOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Some(Duration::from_secs(60)),
        };
        Ok(channel(addr, expected, self.tls.clone(), &opts)?)
    }

    pub fn coordinator(&self) -> Result<Channel, LocalError> {
        self.dial(&self.info.coordinator, Identity::Coordinator)
    }

    pub fn node(&self, id: u16) -> Result<Channel, LocalError> {
        let node = self
            .info
            .nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or_else(|| LocalError::Layout(format!("no node {id} in this cluster")))?;
        self.dial(&node.endpoint, Identity::Node(id))
    }
}
