#!/usr/bin/env bash
# End-to-end run of the Python payment-service example against a local
# Sigil cluster. Run from the repository root, after `cargo build -p sigil-cli`:
#
#   bash examples/python/run-ci.sh
#
# It installs the pinned Python dependencies into a virtualenv, generates the
# gRPC modules from proto/, starts `sigil up` on ephemeral ports in a
# temporary data directory, creates a 2-of-3 ecdsa-secp256k1 key, has the
# payment service get a 0.5 ETH transfer signed over a channel to
# localhost that verifies the coordinator's certificate by that host name
# (and checks the signature with the Rust verifier too), checks that a name
# the certificate does not carry is refused, sends two tampered intents that
# must be refused with PERMISSION_DENIED, stops the cluster and prints
# "N passed, N failed".
#
# Environment: SIGIL_BIN (default target/debug/sigil), PYTHON (default
# python3), SIGIL_PY_VENV (default examples/python/.venv; reused while
# requirements.txt is unchanged), KEEP_WORK=1 keeps the temporary directory.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root" || exit 1

SIGIL_BIN="${SIGIL_BIN:-target/debug/sigil}"
PYTHON="${PYTHON:-python3}"
venv="${SIGIL_PY_VENV:-$here/.venv}"
startup_timeout=60
to_address="0x000000000000000000000000000000000000dEaD"
half_eth_wei=500000000000000000

passed=0
failed=0
cluster_pid=""
work="$(mktemp -d "${TMPDIR:-/tmp}/sigil-python-example.XXXXXX")"
data_dir="$work/data"

log() { printf '==> %s\n' "$*"; }
pass() {
  passed=$((passed + 1))
  printf 'PASS %s\n' "$1"
}
fail() {
  failed=$((failed + 1))
  printf 'FAIL %s\n' "$1"
}

stop_cluster() {
  [ -n "$cluster_pid" ] || return 0
  # The cluster runs in its own process group: SIGINT lets it shut down
  # cleanly; whatever is left after 15 s is killed.
  kill -INT -- "-$cluster_pid" 2>/dev/null || kill -INT "$cluster_pid" 2>/dev/null
  local deadline=$((SECONDS + 15))
  while kill -0 "$cluster_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
    sleep 0.2
  done
  if kill -0 "$cluster_pid" 2>/dev/null; then
    kill -KILL -- "-$cluster_pid" 2>/dev/null || kill -KILL "$cluster_pid" 2>/dev/null
  fi
  wait "$cluster_pid" 2>/dev/null
  cluster_pid=""
}

cleanup() {
  stop_cluster
  [ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

show_cluster_log() {
  if [ -s "$work/cluster.log" ]; then
    echo "--- last lines of the cluster log ---"
    tail -n 40 "$work/cluster.log"
    echo "---"
  fi
}

# Ends the run: stops the cluster, prints the summary (the last line) and exits.
finish() {
  [ "$failed" -eq 0 ] || show_cluster_log
  stop_cluster
  [ "${KEEP_WORK:-0}" != 1 ] || echo "work directory kept: $work"
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

# A setup step that failed: nothing after it can run.
abort() {
  fail "$1"
  finish
}

# ---------------------------------------------------------------- setup

if [ ! -x "$SIGIL_BIN" ]; then
  echo "no sigil binary at $SIGIL_BIN: build it with 'cargo build -p sigil-cli' or set SIGIL_BIN" >&2
  abort "sigil binary present"
fi

log "Python environment ($venv)"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv" || abort "create virtualenv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt" \
    || abort "pip install -r requirements.txt"
  echo "$want" >"$stamp"
fi
py="$venv/bin/python"

log "generating gRPC modules from proto/"
PYTHON="$py" bash "$here/generate.sh" || abort "generate gRPC modules"

log "starting a local cluster in $data_dir"
mkdir -p "$data_dir"
if command -v setsid >/dev/null 2>&1; then
  setsid "$SIGIL_BIN" --data-dir "$data_dir" up --ephemeral-ports >"$work/cluster.log" 2>&1 &
else
  set -m
  "$SIGIL_BIN" --data-dir "$data_dir" up --ephemeral-ports >"$work/cluster.log" 2>&1 &
  set +m
fi
cluster_pid=$!

deadline=$((SECONDS + startup_timeout))
ready=0
while [ "$SECONDS" -lt "$deadline" ]; do
  if ! kill -0 "$cluster_pid" 2>/dev/null; then
    echo "the cluster exited during startup" >&2
    break
  fi
  if [ -f "$data_dir/cluster.json" ] && "$SIGIL_BIN" --data-dir "$data_dir" health >"$work/health.txt" 2>&1; then
    ready=1
    break
  fi
  sleep 0.5
done
if [ "$ready" != 1 ]; then
  cat "$work/health.txt" 2>/dev/null
  abort "cluster up and healthy within ${startup_timeout}s"
fi
pass "cluster up and healthy"

log "creating a 2-of-3 ecdsa-secp256k1 key"
if ! timeout 300 "$SIGIL_BIN" --data-dir "$data_dir" --json key create --scheme ecdsa-secp256k1 --threshold 2 \
  >"$work/key.json" 2>"$work/key.err"; then
  cat "$work/key.err"
  abort "create ecdsa-secp256k1 key"
fi
key_id="$("$py" -c 'import json,sys; print(json.load(sys.stdin)["key_id"])' <"$work/key.json")" \
  || abort "parse key create output"
address="$("$py" -c 'import json,sys; print(json.load(sys.stdin)["addresses"]["ethereum"])' <"$work/key.json")"
echo "key $key_id, Ethereum address $address"
pass "ecdsa-secp256k1 key created"

# ---------------------------------------------------------------- checks

log "payment service: 0.5 ETH to $to_address"
"$py" "$here/payment_service.py" --data-dir "$data_dir" --key-id "$key_id" \
  --to "$to_address" --value-wei "$half_eth_wei" --chain-id 1 --nonce 0 --json \
  >"$work/payment.json" 2>"$work/payment.err"
status=$?
cat "$work/payment.err"
if [ "$status" -eq 0 ] && "$py" - "$work/payment.json" "$address" <<'EOF'
import json, sys
result = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
for k in ("from", "to", "value_wei", "r", "s", "v", "signers", "raw_transaction", "transaction_hash"):
    print(f"  {k:18} {result[k]}")
assert result["ok"], result
assert result["from"].lower() == sys.argv[2].lower(), (result["from"], sys.argv[2])
assert result["value_wei"] == "500000000000000000"
EOF
then
  pass "0.5 ETH transaction signed; signature recovers to the key's address"
else
  cat "$work/payment.json"
  fail "0.5 ETH transaction signed; signature recovers to the key's address"
fi

if [ "$status" -eq 0 ]; then
  log "checking the signature with the Rust verifier (sigil verify)"
  read -r pk sig unsigned < <("$py" -c '
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(r["public_key"], r["signature"], r["unsigned_transaction"])' "$work/payment.json")
  if "$SIGIL_BIN" verify --scheme ecdsa-secp256k1 --public-key "$pk" --signature "$sig" \
    --message-hex "$unsigned" --hash keccak256; then
    pass "sigil verify accepts the signature over keccak256(unsigned transaction)"
  else
    fail "sigil verify accepts the signature over keccak256(unsigned transaction)"
  fi
fi

log "a server name the coordinator's certificate does not carry must be refused"
"$py" "$here/payment_service.py" --data-dir "$data_dir" --key-id "$key_id" \
  --to "$to_address" --value-wei "$half_eth_wei" --chain-id 1 --nonce 1 \
  --tls-server-name evil.example --timeout 20 >/dev/null 2>"$work/wrong-name.err"
status=$?
cat "$work/wrong-name.err"
if [ "$status" -ne 0 ] && grep -q "UNAVAILABLE" "$work/wrong-name.err"; then
  pass "grpcio refuses the coordinator's certificate for evil.example"
else
  fail "grpcio refuses the coordinator's certificate for evil.example"
fi

for how in signature payload; do
  log "tampered intent ($how) must be refused"
  if "$py" "$here/payment_service.py" --data-dir "$data_dir" --key-id "$key_id" \
    --to "$to_address" --value-wei "$half_eth_wei" --chain-id 1 --nonce 1 \
    --expect-refusal --tamper "$how"; then
    pass "tampered intent ($how) refused with PERMISSION_DENIED"
  else
    fail "tampered intent ($how) refused with PERMISSION_DENIED"
  fi
done

finish
