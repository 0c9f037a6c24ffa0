#!/usr/bin/env bash
# Renders k8s/ (plain manifests for `kubectl apply -k k8s/`) from the Helm chart
# with k8s/values.yaml. `--check` renders to a temporary folder and fails if the
# committed files differ (CI runs it so the two never drift).
set -euo pipefail
cd "$(dirname "$0")/.."
out=k8s
check=0
if [ "${1:-}" = "--check" ]; then
  check=1
  out=$(mktemp -d)
  cp k8s/values.yaml k8s/kustomization.yaml k8s/secret.example.yaml "$out"/
fi
python3 scripts/helm.py template charts/mjpeg-relay -f k8s/values.yaml --name mjpeg-relay --namespace default \
  | python3 -c '
import sys, re
out = sys.argv[1]
text = sys.stdin.read()
for doc in text.split("---\n"):
    m = re.match(r"# Source: [^/]+/templates/(\S+)\n", doc)
    if not m:
        continue
    name = m.group(1).replace("/", "-")
    body = doc[m.end():]
    with open(f"{out}/{name}", "w") as f:
        f.write("# Rendered from charts/mjpeg-relay by scripts/render-k8s.sh: do not edit.\n" + body)
' "$out"
if [ "$check" = 1 ]; then
  if ! diff -ru --exclude=values.yaml --exclude=kustomization.yaml --exclude=secret.example.yaml k8s "$out"; then
    echo "k8s/ drifted from the chart: run scripts/render-k8s.sh and commit" >&2
    exit 1
  fi
  echo "k8s/ matches the chart"
fi
