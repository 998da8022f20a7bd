//! Refresh and reshare of FROST keys: the FROST side of the generic
//! verifiable secret redistribution (`crate::reshare`).
//!
//! The current epoch is read from its frost `PublicKeyPackage` (the group
//! key `Y` and every `Y_i`) and, for a dealer, its `KeyPackage` (`s_i`).
//! FROST evaluates shares at the participant's `Identifier`, which in Sigil
//! is the node id, so both sets use node-id coordinates. The new epoch is
//! written back as frost packages built with the plain constructors
//! (`KeyPackage::new`, `PublicKeyPackage::new`, `min_signers = t'`), wrapped
//! as a [`KeyShare`]; the group key, hence every address, is unchanged.
//!
//! Taproot: frost-secp256k1-tr tweaks a key once, in `post_dkg` (BIP-341
//! "no script path" tweak), so the stored shares already share the output
//! key `Q`. They are redistributed as stored and the new packages share the
//! same `Q`: nothing here calls `post_dkg`, `post_generate` or a `tweak`, so
//! the tweak is never applied twice. (Signing maps `Q` to its even-y form at
//! each signature, in frost-secp256k1-tr's `pre_sign`, exactly as for a
//! freshly generated key.)

use std::collections::{BTreeMap, BTreeSet};

use frost_core::keys::{
    KeyPackage, PublicKeyPackage, SigningShare, VerifiableSecretSharingCommitment, VerifyingShare,
};
use frost_core::{Identifier, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use super::KeyShare;
use super::common::{Suite, internal};
use crate::engine::{self, ReshareOutput, ReshareSpec};
use crate::reshare::{
    Committee, Coordinates, Vsr, VsrOutput, VsrParams, decode_element, encode_element,
};
use crate::{Message, NodeId, Protocol, ProtocolError, SessionId, Transition};

fn invalid(reason: impl Into<String>) -> ProtocolError {
    ProtocolError::InvalidParameters(reason.into())
}

fn identifier<C: Suite>(node: NodeId) -> Result<Identifier<C>, ProtocolError> {
    Identifier::<C>::try_from(node.get())
        .map_err(|e| invalid(format!("{node} is not a valid identifier: {e}")))
}

/// A participant set of a FROST key (node-id coordinates), named in errors.
fn committee(
    which: &str,
    participants: &[NodeId],
    threshold: u16,
) -> Result<Committee, ProtocolError> {
    Committee::new(participants, Coordinates::NodeId, threshold).map_err(|e| match e {
        ProtocolError::InvalidParameters(reason) => invalid(format!("{which} set: {reason}")),
        other => other,
    })
}

/// One party's refresh or reshare of a FROST key.
pub(crate) struct FrostReshare<C: Suite> {
    inner: Vsr<C>,
    me: NodeId,
    /// The group key in the scheme's standard encoding, as before.
    public_key: Vec<u8>,
}

impl<C: Suite> std::fmt::Debug for FrostReshare<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrostReshare")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<C: Suite> FrostReshare<C> {
    pub(crate) fn new<R: RngCore + CryptoRng>(
        session: SessionId,
        me: NodeId,
        spec: &ReshareSpec,
        current_public_key_package: &[u8],
        share: Option<&KeyShare>,
        rng: &mut R,
    ) -> Result<Self, ProtocolError> {
        let old = committee(
            "old participant",
            &spec.old_participants,
            spec.old_threshold,
        )?;
        let new = committee(
            "new participant",
            &spec.new_participants,
            spec.new_threshold,
        )?;
        let public = PublicKeyPackage::<C>::deserialize(current_public_key_package)
            .map_err(|e| invalid(format!("corrupt public key package: {e}")))?;

        // The package must describe exactly the old set and threshold.
        let mut ids = BTreeSet::new();
        for node in old.nodes() {
            ids.insert(identifier::<C>(node)?);
        }
        if public
            .verifying_shares()
            .keys()
            .copied()
            .collect::<BTreeSet<_>>()
            != ids
        {
            return Err(invalid(
                "the old participants are not the holders of the current key",
            ));
        }
        if let Some(min) = public.min_signers()
            && min != spec.old_threshold
        {
            return Err(invalid(format!(
                "the current key has threshold {min}, not {}",
                spec.old_threshold
            )));
        }
        let element = |bytes: Result<Vec<u8>, frost_core::Error<C>>| {
            bytes
                .map_err(internal)
                .and_then(|b| decode_element::<C>(&b).map_err(internal))
        };
        let group_key = element(public.verifying_key().serialize())?;
        let mut verifying_shares = BTreeMap::new();
        for node in old.nodes() {
            let share = public
                .verifying_shares()
                .get(&identifier::<C>(node)?)
                .ok_or_else(|| internal("verifying share"))?;
            verifying_shares.insert(node, element(share.serialize())?);
        }

        let signing_share = if spec.dealers.contains(&me) {
            let share = share.ok_or_else(|| invalid(format!("dealer {me} needs its share")))?;
            Some(dealer_share::<C>(me, share, &public)?)
        } else {
            None
        };

        let inner = Vsr::<C>::new(
            VsrParams {
                scheme: C::SCHEME,
                kind: spec.kind,
                session,
                me,
                old,
                dealers: spec.dealers.clone(),
                new,
                group_key,
                verifying_shares,
            },
            signing_share.as_deref(),
            rng,
        )?;
        Ok(Self {
            inner,
            me,
            public_key: C::encode_key(public.verifying_key())?,
        })
    }

    /// The new epoch as frost packages: a `PublicKeyPackage` for everyone,
    /// a `KeyPackage` (as a [`KeyShare`]) for a new participant.
    fn output(&self, out: VsrOutput<C>) -> Result<ReshareOutput, ProtocolError> {
        let verifying_key = VerifyingKey::<C>::deserialize(&encode_element::<C>(&out.group_key)?)
            .map_err(internal)?;
        let mut verifying_shares = BTreeMap::new();
        for (node, y) in &out.verifying_shares {
            let share =
                VerifyingShare::<C>::deserialize(&encode_element::<C>(y)?).map_err(internal)?;
            verifying_shares.insert(identifier::<C>(*node)?, share);
        }
        let public_key = C::encode_key(&verifying_key)?;
        if public_key != self.public_key {
            return Err(internal("the group key changed"));
        }
        let public = PublicKeyPackage::new(verifying_shares, verifying_key, Some(out.threshold));
        // Cross-check with frost-core's own evaluation of the new group
        // commitment (node ids are FROST identifiers).
        let commitment = VerifiableSecretSharingCommitment::<C>::deserialize(
            out.group_commitment
                .iter()
                .map(encode_element::<C>)
                .collect::<Result<Vec<_>, _>>()?,
        )
        .map_err(internal)?;
        let identifiers = public.verifying_shares().keys().copied().collect();
        if PublicKeyPackage::from_commitment(&identifiers, &commitment).map_err(internal)? != public
        {
            return Err(internal(
                "new verifying shares disagree with the group commitment",
            ));
        }
        let public_key_package = public.serialize().map_err(internal)?;
        let key_share = match &out.share {
            Some(share) => {
                let id = identifier::<C>(self.me)?;
                let verifying_share = *public
                    .verifying_shares()
                    .get(&id)
                    .ok_or_else(|| internal("own verifying share"))?;
                let key_package =
                    KeyPackage::new(id, **share, verifying_share, verifying_key, out.threshold);
                let bytes = Zeroizing::new(key_package.serialize().map_err(internal)?);
                Some(engine::KeyShare::Frost(KeyShare::new::<C>(
                    self.me,
                    bytes,
                    public_key_package.clone(),
                )?))
            }
            None => None,
        };
        Ok(ReshareOutput {
            key_share,
            public_key,
            public_key_package,
        })
    }
}

/// A dealer's current share `s_i`, after checking that its key share is
/// this node's share of the key described by `public`.
fn dealer_share<C: Suite>(
    me: NodeId,
    share: &KeyShare,
    public: &PublicKeyPackage<C>,
) -> Result<Zeroizing<SigningShare<C>>, ProtocolError> {
    if share.scheme() != C::SCHEME {
        return Err(invalid(format!(
            "key share is for {}, not {}",
            share.scheme(),
            C::SCHEME
        )));
    }
    if share.node_id() != me {
        return Err(invalid(format!("key share belongs to {}", share.node_id())));
    }
    let key_package = KeyPackage::<C>::deserialize(share.key_package_bytes())
        .map_err(|e| invalid(format!("corrupt key package: {e}")))?;
    let own_public = PublicKeyPackage::<C>::deserialize(share.public_key_package())
        .map_err(|e| invalid(format!("corrupt public key package: {e}")))?;
    if own_public != *public {
        return Err(invalid(
            "key share belongs to another epoch or key than the given public key package",
        ));
    }
    if *key_package.identifier() != identifier::<C>(me)?
        || public.verifying_shares().get(key_package.identifier())
            != Some(key_package.verifying_share())
    {
        return Err(invalid(format!("key share does not belong to {me}")));
    }
    Ok(Zeroizing::new(*key_package.signing_share()))
}

impl<C: Suite> Protocol for FrostReshare<C> {
    type Output = ReshareOutput;

    fn session_id(&self) -> SessionId {
        self.inner.session_id()
    }

    fn expected_round(&self) -> u16 {
        self.inner.expected_round()
    }

    fn start(&mut self) -> Result<Vec<Message>, ProtocolError> {
        self.inner.start()
    }

    fn step(&mut self, inbound: Vec<Message>) -> Result<Transition<ReshareOutput>, ProtocolError> {
        Ok(match self.inner.step(inbound)? {
            Transition::Continue(messages) => Transition::Continue(messages),
            Transition::Finished { messages, output } => Transition::Finished {
                messages,
                output: self.output(output)?,
            },
        })
    }
}
