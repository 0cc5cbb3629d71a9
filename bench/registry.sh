#!/usr/bin/env bash
# One command: berth's registry against a plain Distribution registry on this
# machine. Push and pull of a 100 MiB image of five layers (REPS runs, fresh
# storage each, order alternating), then 20 tasks on one host started at once
# from each, with the downloads of each blob counted. Prints JSON.
#   sudo bench/registry.sh          (REPS=5 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/docker-up >/dev/null
[ -x .venv/bin/python ] && .venv/bin/python -c "import boto3" 2>/dev/null || {
  python3 -m venv .venv && .venv/bin/pip install --quiet -r tests/requirements.txt; }
cargo build --quiet --release -p berth
IMAGE=berth-bench/hundred:v1
if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  ctx="$(mktemp -d)"
  # Four 25 MiB layers of random bytes (they do not compress) on the busybox test image.
  for i in 1 2 3 4; do head -c 26214400 /dev/urandom > "$ctx/l$i"; done
  printf 'FROM berth-test/busybox:latest\nCOPY l1 /l1\nCOPY l2 /l2\nCOPY l3 /l3\nCOPY l4 /l4\n' > "$ctx/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$ctx" >/dev/null
  rm -rf "$ctx"
fi
.venv/bin/python bench/registry.py "$PWD/target/release/berth" "$IMAGE" "${REPS:-5}"
