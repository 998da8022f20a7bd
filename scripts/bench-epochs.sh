#!/bin/bash
# Times refresh and reshare per scheme on a 5-node local cluster (release build).
set -euo pipefail
S=${S:-target/release/sigil}
D=$(mktemp -d /tmp/sigil-epochs.XXXX)
$S --data-dir $D up --nodes 5 --ephemeral-ports > $D/up.log 2>&1 &
UP=$!
trap "kill $UP 2>/dev/null; wait $UP 2>/dev/null; rm -rf $D" EXIT
for i in $(seq 1 100); do [ -f $D/cluster.json ] && $S --data-dir $D health >/dev/null 2>&1 && break; sleep 0.2; done
for scheme in frost-secp256k1 frost-taproot frost-ed25519 ecdsa-secp256k1; do
  for shape in "2 1,2,3" "3 1,2,3,4,5"; do
    set -- $shape
    t=$1; nodes=$2
    key=$($S --data-dir $D --json key create --scheme $scheme --threshold $t --nodes $nodes | python3 -c 'import json,sys; print(json.load(sys.stdin)["key_id"])')
    for run in 1 2; do
      /usr/bin/time -f "%e" -o $D/t $S --data-dir $D --json key refresh --key $key > $D/out.json
      echo "$scheme refresh $t-of-$(echo $nodes | tr ',' '\n' | wc -l) run $run wall $(cat $D/t)s $(python3 -c 'import json; o=json.load(open("'$D/out.json'")); print("redistribute", o["redistribute_ms"], "test_sign", o["test_sign_ms"], "commit", o["commit_ms"])')"
    done
    if [ "$t" = 2 ]; then
      /usr/bin/time -f "%e" -o $D/t $S --data-dir $D --json key reshare --key $key --threshold 3 --nodes 1,2,3,4,5 > $D/out.json
      echo "$scheme reshare 2-of-3 -> 3-of-5 wall $(cat $D/t)s $(python3 -c 'import json; o=json.load(open("'$D/out.json'")); print("redistribute", o["redistribute_ms"], "test_sign", o["test_sign_ms"], "commit", o["commit_ms"])')"
      /usr/bin/time -f "%e" -o $D/t $S --data-dir $D --json key reshare --key $key --threshold 2 --nodes 1,3,4 > $D/out.json
      echo "$scheme reshare 3-of-5 -> 2-of-{1,3,4} wall $(cat $D/t)s $(python3 -c 'import json; o=json.load(open("'$D/out.json'")); print("redistribute", o["redistribute_ms"], "test_sign", o["test_sign_ms"], "commit", o["commit_ms"])')"
    fi
  done
done
