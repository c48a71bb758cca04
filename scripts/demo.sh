#!/usr/bin/env bash
# The main job on the embedded default: one storage node and two mounts (A
# and B) of the volume "demo" on this machine. A change written on A is read
# back on B, and `deltafs status` shows what it cost on the wire.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh

say () { printf '\n\033[1m== %s\033[0m\n' "$*"; }
deltafs () { ./bin/deltafs.js "$@"; }
# Daemons start as plain background node processes so that $! is their PID.
daemon () { ./bin/deltafs.js "$@" & pids+=($!); }

work="$(mktemp -d "${TMPDIR:-/tmp}/deltafs-demo.XXXXXX")"
pids=()
cleanup () {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for m in "$work/A" "$work/B"; do fusermount -uz "$m" 2>/dev/null || true; done
  # --one-file-system: never descend into a mount that is somehow still up.
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

port="${DELTAFS_DEMO_PORT:-$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')}"
mkdir -p "$work/A" "$work/B"

say "storage node on 127.0.0.1:$port (data in $work/node)"
daemon serve --data "$work/node" --listen "127.0.0.1:$port" 2>"$work/node.log"
for m in A B; do
  say "mount $m of volume demo at $work/$m"
  daemon mount demo "$work/$m" --node "127.0.0.1:$port" --data "$work/data-$m" 2>"$work/mount-$m.log"
done
for m in A B; do
  for _ in $(seq 100); do grep -q '"msg":"mounted"' "$work/mount-$m.log" 2>/dev/null && break; sleep 0.1; done
  grep -q '"msg":"mounted"' "$work/mount-$m.log" || { cat "$work/mount-$m.log"; exit 1; }
done

wait_for () { # file expected-content
  for _ in $(seq 200); do [ "$(cat "$1" 2>/dev/null)" = "$2" ] && return 0; sleep 0.01; done
  echo "timed out waiting for $1"; exit 1
}

say "write a note on A, read it on B"
start=$(date +%s%N)
echo "hello from A at $(date -u +%H:%M:%S)" > "$work/A/note.txt"
wait_for "$work/B/note.txt" "$(cat "$work/A/note.txt")"
echo "B reads: $(cat "$work/B/note.txt")   ($(( ($(date +%s%N) - start) / 1000000 )) ms after A's close)"

say "write 64 MiB on A, then change one byte in the middle"
head -c $((64 << 20)) /dev/urandom > "$work/A/big.bin"
for _ in $(seq 300); do [ "$(deltafs status "$work/A" --json | node -e 'const s=JSON.parse(require("fs").readFileSync(0)); process.stdout.write(String(s.pendingTx + s.heldRewrites))')" = 0 ] && break; sleep 0.1; done
before=$(deltafs status "$work/A" --json | node -e 'process.stdout.write(String(JSON.parse(require("fs").readFileSync(0)).bytesPushed))')
printf 'X' | dd of="$work/A/big.bin" bs=1 seek=$((32 << 20)) conv=notrunc status=none
for _ in $(seq 300); do [ "$(dd if="$work/B/big.bin" bs=1 skip=$((32 << 20)) count=1 status=none)" = X ] && break; sleep 0.01; done
after=$(deltafs status "$work/A" --json | node -e 'process.stdout.write(String(JSON.parse(require("fs").readFileSync(0)).bytesPushed))')
if cmp -s "$work/A/big.bin" "$work/B/big.bin"; then echo "B's copy is identical to A's"; else echo "B's copy differs"; exit 1; fi
echo "the 1-byte edit cost $((after - before)) bytes on the wire"

say "deltafs status of A"
deltafs status "$work/A"
say "done: stopping the mounts and the node"
