#!/usr/bin/env bash
# Offline checks of the Helm chart and the Kubernetes YAML (no cluster needed):
#
#   1. k8s/crds/*.yaml and charts/deai/crds/*.yaml are identical copies;
#   2. the CRDs parse, have structural schemas, and k8s/examples/*.yaml validate
#      against them (infra/helm/check-k8s-yaml.py; needs python3 + PyYAML, else
#      helm only checks that they parse);
#   3. `helm lint --strict` of charts/deai for every case below;
#   4. `helm template` of every case equals its golden file charts/deai/golden/<case>.yaml;
#   5. every object each case renders (CRDs included) validates against the Kubernetes
#      schemas (infra/helm/validate-manifests.mjs: kubernetes-models, the prometheus-operator
#      models for ServiceMonitor, the chart's CRDs for their kinds).
#
# Cases: `default` (the chart's values, plus ci/golden-pins.yaml which pins the
# passwords Helm would otherwise generate at random) and one per
# charts/deai/ci/<case>-values.yaml.
#
# UPDATE_GOLDEN=1 rewrites the golden files instead of comparing; review the diff.
# HELM_BIN overrides the helm binary (see infra/helm/helm.sh).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

chart=charts/deai
golden_dir="$chart/golden"
release=deai
namespace=deai
# Pinned so the golden files do not depend on the helm binary's default.
kube_version=1.31.0

helm="$(infra/helm/helm.sh)"
helm_version="$("$helm" version --short 2>/dev/null || echo unknown)"

failures=()
fail() { failures+=("$1"); echo "FAIL: $1" >&2; }
section() { printf '\n== %s\n' "$1"; }

# --- 1. CRD copies ---------------------------------------------------------------------
section "CRDs: k8s/crds and $chart/crds identical"
crd_count=0
shopt -s nullglob
for src in k8s/crds/*.yaml; do
  crd_count=$((crd_count + 1))
  copy="$chart/crds/$(basename "$src")"
  if [[ ! -f "$copy" ]]; then
    fail "$copy missing (copy $src there: cp $src $copy)"
  elif ! cmp -s "$src" "$copy"; then
    diff -u "$src" "$copy" | head -n 40 || true
    fail "$copy differs from $src (the k8s/ file is the source: cp $src $copy)"
  else
    echo "ok   $copy"
  fi
done
for copy in "$chart"/crds/*.yaml; do
  [[ -f "k8s/crds/$(basename "$copy")" ]] || fail "$copy has no source in k8s/crds/"
done
((crd_count > 0)) || fail "no CRDs in k8s/crds/"

# --- 2. CRD schemas and examples --------------------------------------------------------
section "CRD schemas and examples"
examples=(k8s/examples/*.yaml)
if python3 -c 'import yaml' 2>/dev/null; then
  python3 infra/helm/check-k8s-yaml.py k8s/crds/*.yaml -- "${examples[@]}" || fail "k8s YAML checks"
else
  # Fallback: helm's YAML parser (the one kubectl uses) via a throwaway chart.
  echo "python3 PyYAML not found (apt-get install python3-yaml): only checking that the files parse"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/yamlcheck/files" "$tmp/yamlcheck/templates"
  printf 'apiVersion: v2\nname: yamlcheck\nversion: 0.0.0\n' >"$tmp/yamlcheck/Chart.yaml"
  for f in k8s/crds/*.yaml "${examples[@]}"; do cp "$f" "$tmp/yamlcheck/files/$(echo "$f" | tr / _)"; done
  cat >"$tmp/yamlcheck/templates/check.yaml" <<'TPL'
{{- range $path, $_ := .Files.Glob "files/*.yaml" }}
{{- range $i, $doc := regexSplit "(?m)^---\\s*$" ($.Files.Get $path) -1 }}
{{- $parsed := fromYaml $doc }}
{{- if hasKey $parsed "Error" }}{{ fail (printf "%s (document %d): %s" $path $i $parsed.Error) }}{{ end }}
{{- end }}
{{- end }}
TPL
  if "$helm" template "$tmp/yamlcheck" >/dev/null; then echo "ok   every file parses"; else fail "k8s YAML does not parse"; fi
fi

# --- 3 + 4. lint and golden renderings --------------------------------------------------
cases=(default)
for f in "$chart"/ci/*-values.yaml; do
  name="$(basename "$f")"
  cases+=("${name%-values.yaml}")
done

# Value files of a case: its own (none for default), then ci/golden-pins.yaml, which pins
# what the chart would otherwise generate at random (passwords, key seeds).
values_for() {
  if [[ "$1" == default ]]; then
    echo "$chart/ci/golden-pins.yaml"
  else
    echo "$chart/ci/$1-values.yaml $chart/ci/golden-pins.yaml"
  fi
}
values_args() {
  local f
  for f in $(values_for "$1"); do printf -- '-f\n%s\n' "$f"; done
}

section "helm lint --strict ($helm_version)"
for c in "${cases[@]}"; do
  # The default case is linted with the chart's own values only (random passwords and all).
  lint_values=()
  [[ "$c" == default ]] || lint_values=(-f "$chart/ci/$c-values.yaml")
  if out="$("$helm" lint --strict "$chart" "${lint_values[@]}" --kube-version "$kube_version" 2>&1)"; then
    echo "ok   $c"
  else
    echo "$out"
    fail "helm lint --strict ($c)"
  fi
done

section "helm template vs $golden_dir"
mkdir -p "$golden_dir"
updated=0
for c in "${cases[@]}"; do
  values="$(values_for "$c")"
  mapfile -t vargs < <(values_args "$c")
  golden="$golden_dir/$c.yaml"
  if ! rendered="$("$helm" template "$release" "$chart" --namespace "$namespace" --kube-version "$kube_version" "${vargs[@]}" 2>&1)"; then
    echo "$rendered"
    fail "helm template ($c)"
    continue
  fi
  header="# Golden rendering of $chart, case \"$c\" (values: $values). Generated; do not edit.
# Regenerate: UPDATE_GOLDEN=1 bash infra/helm/check.sh"
  if [[ "${UPDATE_GOLDEN:-}" == 1 ]]; then
    printf '%s\n%s\n' "$header" "$rendered" >"$golden"
    echo "wrote $golden"
    updated=$((updated + 1))
  elif [[ ! -f "$golden" ]]; then
    fail "$golden missing (run: UPDATE_GOLDEN=1 bash infra/helm/check.sh)"
  elif ! d="$(diff -u --label "$golden" --label "rendered ($c)" "$golden" <(printf '%s\n%s\n' "$header" "$rendered"))"; then
    lines="$(printf '%s\n' "$d" | wc -l)"
    printf '%s\n' "$d" | head -n 200
    ((lines > 200)) && echo "... ($lines diff lines in all)"
    fail "$golden does not match the rendering (intended? UPDATE_GOLDEN=1 bash infra/helm/check.sh, then review the diff)"
  else
    echo "ok   $c"
  fi
done

section "schema validation of every rendered object (kubernetes-models; CRDs included)"
for c in "${cases[@]}"; do
  mapfile -t vargs < <(values_args "$c")
  if ! rendered="$("$helm" template "$release" "$chart" --namespace "$namespace" --kube-version "$kube_version" --include-crds "${vargs[@]}" 2>&1)"; then
    echo "$rendered"
    fail "helm template --include-crds ($c)"
  elif ! node infra/helm/validate-manifests.mjs "$c" <<<"$rendered"; then
    fail "schema validation ($c)"
  fi
done
if ! node infra/helm/validate-manifests.mjs examples "${examples[@]}"; then fail "schema validation (k8s/examples)"; fi

# A golden file whose case is gone would otherwise rot unnoticed.
for g in "$golden_dir"/*.yaml; do
  c="$(basename "$g" .yaml)"
  if [[ ! " ${cases[*]} " == *" $c "* ]]; then
    if [[ "${UPDATE_GOLDEN:-}" == 1 ]]; then
      rm "$g"
      echo "removed $g (no such case)"
    else
      fail "$g has no case (no $chart/ci/$c-values.yaml); delete it"
    fi
  fi
done

echo
if ((${#failures[@]} > 0)); then
  echo "helm check: FAILED ${#failures[@]} check(s), first: ${failures[0]}"
  exit 1
fi
if [[ "${UPDATE_GOLDEN:-}" == 1 ]]; then
  echo "helm check: ok — ${crd_count} CRD(s), ${#examples[@]} example(s), lint of ${#cases[@]} case(s), ${updated} golden file(s) rewritten ($helm_version)"
else
  echo "helm check: ok — ${crd_count} CRD(s), ${#examples[@]} example(s), lint + golden of ${#cases[@]} case(s): ${cases[*]} ($helm_version)"
fi
