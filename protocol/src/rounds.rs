//! Round plumbing shared by every protocol in this crate (FROST and ECDSA):
//! strict sorting of one round's inbound messages, the echo check that
//! catches an equivocating relay, and blaming a sender for a payload that
//! does not decode.
//!
//! Every protocol receives a round's messages as one batch. Before any
//! cryptography runs, [`sort_inbound`] insists on exactly the expected
//! messages: right session and round, a participant other than this party as
//! sender, an accepted recipient, one message of each expected kind from each
//! expected sender, no omissions. The errors it returns name the message's
//! claimed sender; see [`ProtocolError`] for whom each one implicates.

use std::collections::{BTreeMap, BTreeSet};

use zeroize::Zeroizing;

use crate::{Message, NodeId, ProtocolError, Recipient, SessionId};

/// Which kinds of message a round accepts, each exactly once per expected sender.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Expect {
    pub broadcast: bool,
    pub direct: bool,
    pub coordinator: bool,
}

/// One round's inbound messages, by sender and kind.
#[derive(Default)]
pub(crate) struct Sorted {
    pub broadcast: BTreeMap<NodeId, Vec<u8>>,
    /// Direct payloads carry secret shares: zeroized on drop.
    pub direct: BTreeMap<NodeId, Zeroizing<Vec<u8>>>,
    pub coordinator: BTreeMap<NodeId, Vec<u8>>,
}

/// Sorts one round's messages strictly: right session and round, a known
/// sender other than `me`, an accepted recipient, no duplicates and no omissions.
pub(crate) fn sort_inbound(
    session: SessionId,
    round: u16,
    me: Option<NodeId>,
    senders: &BTreeSet<NodeId>,
    expect: Expect,
    inbound: Vec<Message>,
) -> Result<Sorted, ProtocolError> {
    let mut sorted = Sorted::default();
    for message in inbound {
        let from = message.from;
        if message.session != session {
            return Err(ProtocolError::WrongSession { from });
        }
        if message.round != round {
            return Err(ProtocolError::WrongRound {
                from,
                expected: round,
                got: message.round,
            });
        }
        if Some(from) == me {
            return Err(ProtocolError::FromSelf { claimed_from: from });
        }
        if !senders.contains(&from) {
            return Err(ProtocolError::UnknownSender { from });
        }
        let fresh = match message.to {
            Recipient::Broadcast if expect.broadcast => {
                sorted.broadcast.insert(from, message.payload).is_none()
            }
            Recipient::Node(to) if expect.direct && Some(to) == me => sorted
                .direct
                .insert(from, Zeroizing::new(message.payload))
                .is_none(),
            Recipient::Coordinator if expect.coordinator => {
                sorted.coordinator.insert(from, message.payload).is_none()
            }
            _ => return Err(ProtocolError::Misaddressed { from }),
        };
        if !fresh {
            return Err(ProtocolError::Duplicate { from });
        }
    }
    let missing: BTreeSet<NodeId> = senders
        .iter()
        .copied()
        .filter(|n| {
            (expect.broadcast && !sorted.broadcast.contains_key(n))
                || (expect.direct && !sorted.direct.contains_key(n))
                || (expect.coordinator && !sorted.coordinator.contains_key(n))
        })
        .collect();
    if !missing.is_empty() {
        return Err(ProtocolError::Missing {
            missing: missing.into_iter().collect(),
        });
    }
    Ok(sorted)
}

/// Deserializes a package from `from`, blaming it if that fails.
pub(crate) fn parse<T, E: std::fmt::Display>(
    from: NodeId,
    what: &str,
    result: Result<T, E>,
) -> Result<T, ProtocolError> {
    result.map_err(|e| ProtocolError::Malformed {
        from,
        reason: format!("{what}: {e}"),
    })
}

/// Compares every other party's echo (its digest of an earlier round's
/// broadcasts as it saw them) with this party's own digest. An echo of the
/// wrong length is [`ProtocolError::Malformed`]; differing echoes are
/// [`ProtocolError::InconsistentBroadcast`] naming every party whose view differs.
pub(crate) fn check_echoes<'a>(
    echoes: impl IntoIterator<Item = (NodeId, &'a [u8])>,
    digest: &[u8; 32],
) -> Result<(), ProtocolError> {
    let mut differing = Vec::new();
    for (from, echo) in echoes {
        if echo.len() != digest.len() {
            return Err(ProtocolError::Malformed {
                from,
                reason: format!("echo of {} bytes", echo.len()),
            });
        }
        if echo != digest {
            differing.push(from);
        }
    }
    if differing.is_empty() {
        Ok(())
    } else {
        Err(ProtocolError::InconsistentBroadcast { parties: differing })
    }
}
