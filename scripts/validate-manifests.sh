#!/usr/bin/env bash
# Validate every manifest of every bundle against the Kubernetes OpenAPI schemas, strictly (unknown
# fields are errors), for each Kubernetes version wharf supports.
#
#   scripts/validate-manifests.sh              # all bundles/*.yaml, Kubernetes 1.29 ... 1.33
#   scripts/validate-manifests.sh bundles/lite.yaml
#   KUBE_VERSIONS="1.33" WHARF_BIN=target/debug/wharf scripts/validate-manifests.sh
#
# Uses kubernetes-validate (PyPI, it bundles the schemas) in a venv under target/validate-venv.
# The rendered manifests stay in target/validate-manifests/<bundle>/ for inspection (and for
# charms/gateway/tests/routing_test.py).
#
# Custom resources: kubernetes-validate has no schema for them and only warns ("Couldn't find
# schema"), which would also let a misspelt kind or apiVersion of a built-in object pass. So
# this script turns every such warning into a failure, except for objects whose API group is one of
# ours (wharf.dev) or is defined by a CustomResourceDefinition in the same rendered bundle; those
# are reported as skipped. The CustomResourceDefinitions themselves are validated.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

KUBERNETES_VALIDATE_VERSION="1.37.0"
KUBE_VERSIONS="${KUBE_VERSIONS:-1.29 1.30 1.31 1.32 1.33}"
VENV="$ROOT/target/validate-venv"
OUT="$ROOT/target/validate-manifests"
OWN_GROUPS="wharf.dev"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'validate-manifests: %s\n' "$*" >&2; exit 2; }

# --- the validator -------------------------------------------------------------------------------
if ! "$VENV/bin/python" -c 'import kubernetes_validate' 2>/dev/null \
  || [ "$("$VENV/bin/python" -c 'import kubernetes_validate.version as v; print(v.__version__)')" != "$KUBERNETES_VALIDATE_VERSION" ]; then
  say "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed: install python3-venv (apt-get install python3-venv)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
    || die "pip install kubernetes-validate==$KUBERNETES_VALIDATE_VERSION failed (is PyPI reachable?)"
fi
PY="$VENV/bin/python"

# Refuse a version the installed schemas do not cover rather than let kubernetes-validate fall back
# to an older schema silently.
supported="$("$PY" -c 'import kubernetes_validate.utils as u; print(" ".join(u.major_minor(v) for v in u.all_versions()))')"
version_args=()
for v in $KUBE_VERSIONS; do
  case " $supported " in
    *" $v "*) version_args+=(-k "$v.0") ;;
    *) die "Kubernetes $v is not covered by kubernetes-validate $KUBERNETES_VALIDATE_VERSION (it has: $supported); fix KUBE_VERSIONS" ;;
  esac
done

# --- the manifests -------------------------------------------------------------------------------
if [ -n "${WHARF_BIN:-}" ]; then
  wharf=("$WHARF_BIN")
else
  wharf=(cargo run -q -p wharf --)
fi

if [ "$#" -gt 0 ]; then bundles=("$@"); else bundles=(bundles/*.yaml); fi
[ -e "${bundles[0]}" ] || die "no bundles found (looked for bundles/*.yaml in $ROOT)"

# Files of bundles/ that are overlays (src/charm/source.rs SHIPPED_OVERLAYS), not bundles: each is
# validated on top of the bundle it is for, as `full+ha`.
OVERLAY_BASES="ha=full"

failed=0
for bundle in "${bundles[@]}"; do
  name="$(basename "$bundle" .yaml)"
  render_args=("$bundle")
  for pair in $OVERLAY_BASES; do
    if [ "${pair%%=*}" = "$name" ]; then
      render_args=("bundles/${pair#*=}.yaml" --overlay "$bundle")
      name="${pair#*=}+$name"
    fi
  done
  dir="$OUT/$name"
  rm -rf "$dir"
  mkdir -p "$dir"
  say "rendering ${render_args[*]} -> ${dir#"$ROOT"/}"
  if ! "${wharf[@]}" render "${render_args[@]}" -o "$dir"; then
    echo "FAIL $bundle: wharf render failed (see above)" >&2
    failed=1
    continue
  fi
  mapfile -t files < <(find "$dir" -type f \( -name '*.yaml' -o -name '*.yml' \) | sort)
  if [ "${#files[@]}" -eq 0 ]; then
    echo "FAIL $bundle: wharf render wrote no manifests into $dir" >&2
    failed=1
    continue
  fi

  # API groups that are ours or defined by this bundle's own CustomResourceDefinitions.
  crd_groups="$("$PY" - "${files[@]}" <<'PYEOF'
import sys, yaml
groups = set()
for path in sys.argv[1:]:
    with open(path) as f:
        for doc in yaml.safe_load_all(f):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                groups.add(doc.get("spec", {}).get("group", ""))
print(" ".join(sorted(g for g in groups if g)))
PYEOF
)"
  allowed=" $OWN_GROUPS $crd_groups "

  say "validating ${#files[@]} files of $name against Kubernetes $KUBE_VERSIONS (strict)"
  set +e
  report="$("$VENV/bin/kubernetes-validate" --strict "${version_args[@]}" "${files[@]}" 2>&1)"
  rc=$?
  set -e

  passed=$(grep -c '^INFO ' <<<"$report" || true)
  skipped=0
  while IFS= read -r line; do
    case "$line" in
      INFO\ *) ;;
      WARN\ *"Couldn't find schema for kind "*)
        # WARN <file> Couldn't find schema for kind <Kind> with api version <group/version> for kubernetes version <v>
        api="$(sed -E 's/.* with api version ([^ ]+) for kubernetes version.*/\1/' <<<"$line")"
        group="${api%/*}"
        [ "$group" = "$api" ] && group=""
        if [ -n "$group" ] && [[ "$allowed" == *" $group "* ]]; then
          skipped=$((skipped + 1))
        else
          echo "FAIL ${line#WARN } (not a custom resource of ours: misspelt kind or apiVersion?)" >&2
          failed=1
        fi
        ;;
      "") ;;
      *)
        echo "FAIL ${line#ERROR }" >&2
        failed=1
        ;;
    esac
  done <<<"$report"
  if [ "$rc" -ne 0 ]; then failed=1; fi
  say "$name: $passed object-versions valid, $skipped custom-resource checks skipped (no schema)"
done

if [ "$failed" -ne 0 ]; then
  echo "validate-manifests: FAILED (each FAIL line names the file, the object and the Kubernetes version)" >&2
  exit 1
fi
say "all manifests valid"
