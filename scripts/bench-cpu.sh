#!/usr/bin/env bash
# CPU per signature of a local cluster: starts `sigil up` on ephemeral
# ports, reads the cluster process's CPU time (user + system, from
# /proc/<pid>/stat) around one `sigil bench sign` run, and prints
# throughput, the ratio to the in-process baseline, p50 latency and the
# cluster's CPU milliseconds per signature (docs/performance.md, Run 7).
#
# usage: scripts/bench-cpu.sh <sigil binary> <label> [scheme] [concurrency] [duration]
set -euo pipefail
S=$1; L=$2; SCHEME=${3:-frost-secp256k1}; C=${4:-16}; DURATION=${5:-10s}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
"$S" --data-dir "$D" up --ephemeral-ports > "$D/up.log" 2>&1 &
UP=$!
for _ in $(seq 1 120); do
  if "$S" --data-dir "$D" health > /dev/null 2>&1; then break; fi
  sleep 0.5
done
cpu() { awk '{print $14 + $15}' "/proc/$UP/stat"; }
BEFORE=$(cpu)
OUT=$("$S" --data-dir "$D" --json bench sign --scheme "$SCHEME" --concurrency "$C" \
  --duration "$DURATION" --baseline-duration 2s)
AFTER=$(cpu)
kill "$UP"; wait "$UP" 2> /dev/null || true
python3 - "$L" "$OUT" "$BEFORE" "$AFTER" "$C" <<'PY'
import json, os, sys
label, out, before, after, c = sys.argv[1:]
d = json.loads(out)
ok = d["cluster"]["ok"]
cpu_ms = (int(after) - int(before)) / os.sysconf("SC_CLK_TCK") * 1000 / max(ok, 1)
print(f"{label} c={c} sig/s={d['cluster']['throughput_rps']:.0f} ratio={d['ratio']:.3f} "
      f"p50={d['cluster']['latency_ms']['p50']:.1f}ms cpu_ms_per_sig={cpu_ms:.2f} "
      f"in_process={d['in_process']['throughput_sps']:.0f}")
PY
