#!/usr/bin/env python3
"""A payment service that gets an Ethereum transaction signed by a Sigil cluster.

It builds an unsigned EIP-1559 transaction, wraps it in a `sigil.v1.Intent`,
signs the serialized intent with the private key of its own mTLS client
certificate, and calls `sigil.v1.Signing/Sign` with the `SignedIntent`.
Every node checks that signature and parses the transaction itself before it
signs. The service then checks the threshold signature locally and prints the
signed raw transaction, ready to broadcast.

With `--expect-refusal` it instead sends an intent that was altered after
signing and succeeds only if the cluster refuses it with PERMISSION_DENIED.

Run `generate.sh` first (or `run-ci.sh`, which does everything); see README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "gen"))

import grpc  # noqa: E402
import rlp  # noqa: E402
from Crypto.Hash import keccak  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.exceptions import InvalidSignature  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, utils  # noqa: E402
from eth_keys import keys as eth_keys  # noqa: E402

try:
    from sigil.v1 import common_pb2, coordinator_pb2, coordinator_pb2_grpc, policy_pb2
except ImportError as e:  # pragma: no cover - setup problem
    sys.exit(f"generated Sigil modules not found ({e}); run {HERE / 'generate.sh'} first")

# Domain separation prefix of an intent signature (docs/policy.md).
INTENT_DOMAIN = b"sigil.v1.Intent\x00"
# How long the intent stays valid (the nodes accept at most 10 minutes).
INTENT_TTL_MS = 5 * 60 * 1000
# Order of the secp256k1 group: Ethereum accepts only s <= N/2 (EIP-2).
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
# The host the coordinator is reached at (on the port of cluster.json), and
# the name its certificate is verified against, as for any TLS server: the
# dev certificate carries DNS SANs coordinator.<trust domain> and localhost
# and IP SANs 127.0.0.1 and ::1 besides its SPIFFE URI. See README.md.
DEFAULT_HOST = "localhost"


class Failure(Exception):
    """A failed step; the message says which and why."""


def keccak256(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


# ---------------------------------------------------------------- inputs


def parse_address(text: str) -> bytes:
    """A 0x-prefixed 20-byte address; mixed case must be a valid EIP-55 checksum."""
    if not text.startswith(("0x", "0X")) or len(text) != 42:
        raise Failure(f"--to {text!r}: expected 0x followed by 40 hex digits")
    digits = text[2:]
    try:
        raw = bytes.fromhex(digits)
    except ValueError as e:
        raise Failure(f"--to {text!r}: not hex") from e
    if digits != digits.lower() and digits != digits.upper():
        want = eip55(raw)
        if text[2:] != want[2:]:
            raise Failure(f"--to {text!r}: bad EIP-55 checksum (expected {want})")
    return raw


def eip55(address: bytes) -> str:
    hexaddr = address.hex()
    digest = keccak256(hexaddr.encode()).hex()
    return "0x" + "".join(
        c.upper() if c.isalpha() and int(digest[i], 16) >= 8 else c
        for i, c in enumerate(hexaddr)
    )


class ClientFiles:
    """The TLS files of one client identity of a `sigil up` data directory."""

    def __init__(self, data_dir: Path, client: str):
        info_path = data_dir / "cluster.json"
        try:
            info = json.loads(info_path.read_text())
        except FileNotFoundError as e:
            raise Failure(f"{info_path} not found: is `sigil --data-dir {data_dir} up` running?") from e
        except (OSError, ValueError) as e:
            raise Failure(f"cannot read {info_path}: {e}") from e
        # "127.0.0.1:7400": only the port is used; the host is --host.
        self.coordinator_port: str = info["coordinator"].rsplit(":", 1)[-1]
        self.trust_domain: str = info.get("trust_domain", "")
        files = info.get("clients", {}).get(client)
        if files is None:
            known = ", ".join(sorted(info.get("clients", {})))
            raise Failure(f"no client {client!r} in {info_path} (known: {known})")

        def read(kind: str) -> bytes:
            # Paths in cluster.json may be absolute or relative to the data directory.
            path = Path(files[kind])
            if not path.is_absolute():
                path = data_dir / path
            try:
                return path.read_bytes()
            except OSError as e:
                raise Failure(f"cannot read the {kind} file of client {client!r}: {e}") from e

        self.ca_pem = read("ca")
        self.cert_pem = read("cert")
        self.key_pem = read("key")

        certs = x509.load_pem_x509_certificates(self.cert_pem)
        # DER, leaf first, as the PEM file lists them.
        self.chain_der = [c.public_bytes(serialization.Encoding.DER) for c in certs]
        self.requester = spiffe_uri(certs[0])
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise Failure(f"the key of client {client!r} is not an ECDSA P-256 key")
        self.private_key = key


def spiffe_uri(cert: x509.Certificate) -> str:
    """The SPIFFE URI SAN of a certificate (the identity Sigil authorizes)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as e:
        raise Failure("the client certificate has no subjectAltName") from e
    uris = [u for u in san.get_values_for_type(x509.UniformResourceIdentifier) if u.startswith("spiffe://")]
    if len(uris) != 1:
        raise Failure(f"expected exactly one SPIFFE URI SAN in the client certificate, found {uris}")
    return uris[0]


# ---------------------------------------------------------------- transaction


class Eip1559Tx:
    """An EIP-1559 (type 2) transaction: 0x02 || rlp([fields..., (y_parity, r, s)])."""

    TYPE = b"\x02"

    def __init__(self, args: argparse.Namespace):
        self.chain_id = args.chain_id
        self.nonce = args.nonce
        self.max_priority_fee_per_gas = args.max_priority_fee_per_gas
        self.max_fee_per_gas = args.max_fee_per_gas
        self.gas_limit = args.gas_limit
        self.to = parse_address(args.to)
        self.value = args.value_wei
        self.data = b""
        self.access_list: list = []
        for name in ("chain_id", "nonce", "max_priority_fee_per_gas", "max_fee_per_gas", "gas_limit", "value"):
            v = getattr(self, name)
            if v < 0 or v >= 1 << 256:
                raise Failure(f"{name} out of range: {v}")
        if self.max_priority_fee_per_gas > self.max_fee_per_gas:
            raise Failure("max priority fee per gas exceeds max fee per gas")

    def _fields(self) -> list:
        return [
            self.chain_id,
            self.nonce,
            self.max_priority_fee_per_gas,
            self.max_fee_per_gas,
            self.gas_limit,
            self.to,
            self.value,
            self.data,
            self.access_list,
        ]

    def unsigned(self) -> bytes:
        return self.TYPE + rlp.encode(self._fields())

    def signing_hash(self) -> bytes:
        return keccak256(self.unsigned())

    def signed(self, y_parity: int, r: int, s: int) -> bytes:
        return self.TYPE + rlp.encode(self._fields() + [y_parity, r, s])


# ---------------------------------------------------------------- intent


def build_signed_intent(
    files: ClientFiles, key_id: str, derivation_path: str, payload: bytes
) -> tuple[policy_pb2.SignedIntent, policy_pb2.Intent]:
    intent = policy_pb2.Intent(
        intent_id=str(uuid.uuid4()),
        requester=files.requester,
        key_id=key_id,
        derivation_path=derivation_path,
        payload=policy_pb2.Payload(ethereum_transaction=payload),
        idempotency_key=str(uuid.uuid4()),
        not_after_unix_ms=int(time.time() * 1000) + INTENT_TTL_MS,
    )
    # Serialized once: these exact bytes are signed and sent; nobody re-serializes.
    intent_bytes = intent.SerializeToString()
    signature = files.private_key.sign(INTENT_DOMAIN + intent_bytes, ec.ECDSA(hashes.SHA256()))  # DER
    signed = policy_pb2.SignedIntent(
        intent=intent_bytes,
        signature=signature,
        certificate_chain=files.chain_der,
    )
    return signed, intent


def tamper(signed: policy_pb2.SignedIntent, intent: policy_pb2.Intent, how: str, new_value: bytes | None):
    """What an attacker between the payment service and the nodes might send."""
    forged = policy_pb2.SignedIntent()
    forged.CopyFrom(signed)
    if how == "signature":
        # One bit of the signature flipped.
        sig = bytearray(forged.signature)
        sig[-1] ^= 0x01
        forged.signature = bytes(sig)
    elif how == "payload":
        # A different transaction (more wei) under the original signature.
        changed = policy_pb2.Intent()
        changed.CopyFrom(intent)
        changed.payload.ethereum_transaction = new_value
        forged.intent = changed.SerializeToString()
    else:  # pragma: no cover - argparse restricts the choices
        raise Failure(f"unknown tampering {how!r}")
    return forged


# ---------------------------------------------------------------- gRPC


def channel(files: ClientFiles, host: str, server_name: str | None) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=files.ca_pem,
        private_key=files.key_pem,
        certificate_chain=files.cert_pem,
    )
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    # grpcio verifies the coordinator's certificate against the cluster CA
    # and the host connected to (a DNS or IP SAN); --tls-server-name
    # verifies it against another name instead.
    options = [] if server_name is None else [("grpc.ssl_target_name_override", server_name)]
    return grpc.secure_channel(f"{host}:{files.coordinator_port}", creds, options=options)


def describe_rpc_error(method: str, e: grpc.RpcError) -> dict:
    metadata = {}
    for item in e.trailing_metadata() or ():
        metadata[item.key] = item.value if isinstance(item.value, str) else item.value.hex()
    return {"method": method, "code": e.code().name, "message": e.details(), "metadata": metadata}


def print_rpc_error(err: dict) -> None:
    print(f"{err['method']} failed: {err['code']}: {err['message']}", file=sys.stderr)
    for k, v in err["metadata"].items():
        print(f"  {k}: {v}", file=sys.stderr)


# ---------------------------------------------------------------- verification


def verify_signature(tx: Eip1559Tx, resp: coordinator_pb2.SignResponse, key_pub: bytes, address: str) -> tuple[int, int, int, str]:
    """Checks the signature against the key and its Ethereum address; returns (v, r, s, from)."""
    if resp.scheme != common_pb2.SCHEME_ECDSA_SECP256K1:
        raise Failure(f"the key is a {common_pb2.Scheme.Name(resp.scheme)} key; Ethereum needs ECDSA secp256k1")
    if resp.public_key != key_pub:
        raise Failure("the signing key differs from the one GetPublicKey returned")
    if len(resp.signature) != 64:
        raise Failure(f"expected a 64-byte r||s signature, got {len(resp.signature)} bytes")
    r = int.from_bytes(resp.signature[:32], "big")
    s = int.from_bytes(resp.signature[32:], "big")
    v = resp.recovery_id
    if v not in (0, 1):
        raise Failure(f"recovery id {v} is not a valid y parity")
    if s > SECP256K1_N // 2:
        raise Failure("s is not in the lower half of the group order (EIP-2)")
    digest = tx.signing_hash()

    # 1. ECDSA verification with the 33-byte compressed key.
    public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), key_pub)
    try:
        public_key.verify(utils.encode_dss_signature(r, s), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    except InvalidSignature as e:
        raise Failure("the signature does not verify under the key's public key") from e

    # 2. Recovery: (v, r, s) must give back the key, hence the key's address.
    recovered = eth_keys.Signature(vrs=(v, r, s)).recover_public_key_from_msg_hash(digest)
    uncompressed = public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    if recovered.to_bytes() != uncompressed[1:]:
        raise Failure(f"recovery id {v} does not recover the key's public key")
    sender = recovered.to_checksum_address()
    if sender.lower() != address.lower():
        raise Failure(f"the signature recovers to {sender}, the key's address is {address}")
    return v, r, s, sender


# ---------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True, type=Path, help="data directory of `sigil up`")
    p.add_argument("--key-id", required=True, help="an ecdsa-secp256k1 key")
    p.add_argument("--to", required=True, help="recipient, 0x-prefixed (EIP-55 checked when mixed case)")
    p.add_argument("--value-wei", required=True, type=int)
    p.add_argument("--chain-id", type=int, default=1)
    p.add_argument("--nonce", type=int, default=0)
    p.add_argument("--gas-limit", type=int, default=21_000)
    p.add_argument("--max-fee-per-gas", type=int, default=30_000_000_000, help="wei (default 30 gwei)")
    p.add_argument("--max-priority-fee-per-gas", type=int, default=1_000_000_000, help="wei (default 1 gwei)")
    p.add_argument("--derivation-path", default="", help='BIP-32 path of a child key, e.g. "m/0/7" (default: the key itself)')
    p.add_argument("--client", default="signer", help="client identity of the data directory to act as (default: signer)")
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"host to reach the coordinator at, on the port of cluster.json; its certificate is verified against it (default: {DEFAULT_HOST})",
    )
    p.add_argument(
        "--tls-server-name",
        default=None,
        help="verify the coordinator's certificate against this name instead of --host (grpc.ssl_target_name_override)",
    )
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per call (default 120)")
    p.add_argument(
        "--expect-refusal",
        action="store_true",
        help="send a tampered intent; succeed only if the cluster refuses it with PERMISSION_DENIED",
    )
    p.add_argument(
        "--tamper",
        choices=("signature", "payload"),
        default="signature",
        help="with --expect-refusal: flip a bit of the signature, or change the transaction after signing",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    files = ClientFiles(args.data_dir, args.client)
    tx = Eip1559Tx(args)
    with channel(files, args.host, args.tls_server_name) as ch:
        signing = coordinator_pb2_grpc.SigningStub(ch)
        try:
            key = signing.GetPublicKey(
                coordinator_pb2.GetPublicKeyRequest(key_id=args.key_id, derivation_path=args.derivation_path),
                timeout=args.timeout,
            )
        except grpc.RpcError as e:
            return rpc_failure("Signing/GetPublicKey", e, args)
        address = key.addresses.get("ethereum", "")
        if not address:
            raise Failure(f"key {args.key_id} has no Ethereum address (scheme {common_pb2.Scheme.Name(key.scheme)})")

        unsigned = tx.unsigned()
        signed_intent, intent = build_signed_intent(files, args.key_id, args.derivation_path, unsigned)
        if args.expect_refusal:
            bigger = Eip1559Tx(args)
            bigger.value = tx.value * 10 + 1
            signed_intent = tamper(signed_intent, intent, args.tamper, bigger.unsigned())

        # Only the intent: key, message, path and idempotency key come from it.
        request = coordinator_pb2.SignRequest(intent=signed_intent)
        try:
            resp = signing.Sign(request, timeout=args.timeout)
        except grpc.RpcError as e:
            if args.expect_refusal:
                return refusal(args, describe_rpc_error("Signing/Sign", e))
            return rpc_failure("Signing/Sign", e, args)

    if args.expect_refusal:
        raise Failure(f"a tampered intent ({args.tamper}) was signed: session {resp.session_id}, signers {list(resp.signers)}")

    v, r, s, sender = verify_signature(tx, resp, key.public_key, address)
    raw = tx.signed(v, r, s)
    result = {
        "ok": True,
        "key_id": args.key_id,
        "requester": files.requester,
        "intent_id": intent.intent_id,
        "idempotency_key": intent.idempotency_key,
        "from": sender,
        "to": eip55(tx.to),
        "value_wei": str(tx.value),
        "chain_id": tx.chain_id,
        "nonce": tx.nonce,
        "unsigned_transaction": "0x" + unsigned.hex(),
        "signing_hash": "0x" + tx.signing_hash().hex(),
        "public_key": key.public_key.hex(),
        "signature": resp.signature.hex(),
        "r": f"0x{r:064x}",
        "s": f"0x{s:064x}",
        "v": v,
        "raw_transaction": "0x" + raw.hex(),
        "transaction_hash": "0x" + keccak256(raw).hex(),
        "session_id": resp.session_id,
        "signers": list(resp.signers),
        "replayed": resp.replayed,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"requester        {files.requester}")
        print(f"intent           {intent.intent_id}")
        print(f"from             {sender}  (key {args.key_id})")
        print(f"to               {result['to']}")
        print(f"value            {tx.value} wei, chain id {tx.chain_id}, nonce {tx.nonce}")
        print(f"signing hash     {result['signing_hash']}")
        print(f"r                {result['r']}")
        print(f"s                {result['s']}")
        print(f"v (y parity)     {v}")
        print(f"signers          {result['signers']}  session {resp.session_id}")
        print(f"raw transaction  {result['raw_transaction']}")
        print(f"tx hash          {result['transaction_hash']}")
        print(f"verified: the signature recovers to {sender}, the key's Ethereum address")
    return 0


def rpc_failure(method: str, e: grpc.RpcError, args: argparse.Namespace) -> int:
    err = describe_rpc_error(method, e)
    if args.json:
        print(json.dumps({"ok": False, "error": err}))
    print_rpc_error(err)
    return 1


def refusal(args: argparse.Namespace, err: dict) -> int:
    refused = err["code"] == "PERMISSION_DENIED"
    if args.json:
        print(json.dumps({"ok": refused, "refused": True, "tamper": args.tamper, "error": err}))
    elif refused:
        print(f"tampered intent ({args.tamper}) refused as expected:")
        print(f"  {err['code']}: {err['message']}")
        for k, v in err["metadata"].items():
            print(f"  {k}: {v}")
    if not refused:
        print("error: the tampered intent was refused, but not with PERMISSION_DENIED", file=sys.stderr)
        print_rpc_error(err)
        return 1
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except Failure as e:
        if args.json:
            print(json.dumps({"ok": False, "error": {"message": str(e)}}))
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
