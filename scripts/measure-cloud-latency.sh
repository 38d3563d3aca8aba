#!/usr/bin/env bash
# Measures the simulated cloud's operations as the simulator records them (createdAt to doneAt):
# usage: scripts/measure-cloud-latency.sh BALLAST_BINARY "attach=200ms,..." [ROUNDS]  (root: it attaches loop devices)
# Each round creates, attaches, snapshots, detaches, resizes and deletes a disk; prints p50/max per operation.
set -euo pipefail
BIN=$1; LAT=$2; N=${3:-20}
D=$(mktemp -d /tmp/cloudlat-XXXX); PORT=17171
$BIN cloud serve --listen 127.0.0.1:$PORT --volumes-dir $D/volumes --state-dir $D/state --latency "$LAT" > $D/log 2>&1 &
PID=$!; trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; losetup -a | grep $D | cut -d: -f1 | xargs -r -n1 losetup -d; rm -rf $D' EXIT
for i in $(seq 50); do [ -f $D/state/admin.key ] && curl -s http://127.0.0.1:$PORT/healthz >/dev/null && break; sleep 0.1; done
K=$(cat $D/state/admin.key); U=http://127.0.0.1:$PORT/v1; H="Authorization: Bearer $K"
I=$(curl -s -H "$H" -d '{"name":"lat","zone":"ballast-1a"}' $U/instances | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')
op() { python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])'; }
waitop() { curl -s -H "$H" "$U/operations/$1?wait=30" > /dev/null; }
OPS=()
for n in $(seq $N); do
  o=$(curl -s -H "$H" -d "{\"name\":\"d$n\",\"zone\":\"ballast-1a\",\"sizeBytes\":1073741824}" $U/disks | op); waitop $o; OPS+=($o)
  V=$(curl -s -H "$H" $U/operations/$o | python3 -c 'import json,sys;print(json.load(sys.stdin)["targetId"])')
  o=$(curl -s -H "$H" -d "{\"instanceId\":\"$I\"}" $U/disks/$V/attach | op); waitop $o; OPS+=($o)
  o=$(curl -s -H "$H" -d "{\"diskId\":\"$V\",\"name\":\"s$n\"}" $U/snapshots | op); waitop $o; OPS+=($o)
  S=$(curl -s -H "$H" $U/operations/$o | python3 -c 'import json,sys;print(json.load(sys.stdin)["targetId"])')
  o=$(curl -s -H "$H" -d "{\"instanceId\":\"$I\"}" $U/disks/$V/detach | op); waitop $o; OPS+=($o)
  o=$(curl -s -H "$H" -d "{\"sizeBytes\":2147483648}" $U/disks/$V/resize | op); waitop $o; OPS+=($o)
  o=$(curl -s -H "$H" -X DELETE $U/snapshots/$S | op); waitop $o; OPS+=($o)
  o=$(curl -s -H "$H" -X DELETE $U/disks/$V | op); waitop $o; OPS+=($o)
done
for o in "${OPS[@]}"; do curl -s -H "$H" $U/operations/$o | python3 -c "import json,sys; print(json.dumps(json.load(sys.stdin)))"; done | python3 -c '
import json,sys,statistics
from datetime import datetime
by={}
for line in sys.stdin:
    line=line.strip()
    if not line: continue
    try: o=json.loads(line)
    except Exception: continue
    if "doneAt" not in o: continue
    t=lambda s: datetime.fromisoformat(s.replace("Z","+00:00")).timestamp()
    by.setdefault(o["kind"],[]).append((t(o["doneAt"])-t(o["createdAt"]))*1000)
print("operation           n   p50 ms   max ms")
for k,v in sorted(by.items()):
    v.sort(); print(f"{k:18} {len(v):>3} {v[len(v)//2]:>8.1f} {v[-1]:>8.1f}")
'
