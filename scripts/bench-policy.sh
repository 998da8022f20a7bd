#!/usr/bin/env bash
# ECDSA signing of Ethereum transfers on one cluster: a key under a signed
# policy with limits (per-tx, rolling daily amount and count, destination
# allowlist) beside a key on the default policy, with the cluster process's
# CPU milliseconds per signature (docs/performance.md, Run 8).
#
# usage: scripts/bench-policy.sh <sigil binary> <label> [concurrency]
set -euo pipefail
S=$1; L=$2; C=${3:-8}
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
"$S" --data-dir "$D" up --ephemeral-ports > "$D/up.log" 2>&1 &
UP=$!
for _ in $(seq 1 120); do "$S" --data-dir "$D" health > /dev/null 2>&1 && break; sleep 0.5; done
K1=$("$S" --data-dir "$D" --json key create --scheme ecdsa-secp256k1 --threshold 2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["key_id"])')
K2=$("$S" --data-dir "$D" --json key create --scheme ecdsa-secp256k1 --threshold 2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["key_id"])')
cat > "$D/p.toml" <<T
key_id = "$K1"
version = 1
requesters = ["signer"]

[[assets]]
asset = "evm:1/native"
max_per_tx = "1000000000000000000"
max_per_day = "1000000000000000000000000"
max_count_per_day = 10000000

[[destinations]]
chain = "evm:1"
allow = ["0x1111111111111111111111111111111111111111"]
T
"$S" --data-dir "$D" policy propose --key "$K1" --file "$D/p.toml" --out "$D/p.json" > /dev/null
"$S" --data-dir "$D" --as officer-1 policy sign --file "$D/p.json" > /dev/null
"$S" --data-dir "$D" --as officer-2 policy sign --file "$D/p.json" > /dev/null
"$S" --data-dir "$D" policy apply --file "$D/p.json" > /dev/null
cpu() { awk '{print $14 + $15}' "/proc/$UP/stat"; }
for K in "$K1:limits" "$K2:default"; do
  KEY=${K%%:*}; WHAT=${K##*:}
  B=$(cpu)
  OUT=$("$S" --data-dir "$D" --json bench sign --key "$KEY" --payload eth-transfer --concurrency "$C" --duration 10s --baseline-duration 0s)
  A=$(cpu)
  python3 - "$L $WHAT" "$OUT" "$B" "$A" <<'PY'
import json, os, sys
label, out, b, a = sys.argv[1:]
d = json.loads(out); ok = d["cluster"]["ok"]
print(f"{label} sig/s={d['cluster']['throughput_rps']:.1f} p50={d['cluster']['latency_ms']['p50']:.1f}ms cpu_ms_per_sig={(int(a)-int(b))/os.sysconf('SC_CLK_TCK')*1000/max(ok,1):.2f} failed={d['cluster'].get('failed')}")
PY
done
kill "$UP"; wait "$UP" 2>/dev/null || true
