#!/usr/bin/env bash
# Builds the release bundle with scripts/release into a scratch folder and
# checks it: checksums, manifest, images (inspected with skopeo and umoci,
# pushed to a registry on loopback to check the digests the manifest records,
# and the core image's root filesystem started against PostgreSQL), SBOM, chart.
# Installs skopeo, umoci and the registry (Debian's docker-registry) when
# missing. Needs the test PostgreSQL cluster (scripts/pg) and root (for chroot).
# Extra arguments go to pytest. BUNDLE_DIR=... checks an existing bundle.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
venv="$target/helm-venv"
bash deploy/helm/test.sh --co -q >/dev/null # creates the virtualenv

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
for tool in skopeo umoci docker-registry; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "release tests: installing ${missing[*]} from the distribution's packages" >&2
  as_root apt-get update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The package enables a system-wide registry on :5000; the tests start their own.
  if [[ " ${missing[*]} " == *" docker-registry "* ]] && command -v systemctl >/dev/null; then
    as_root systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
  fi
fi
stamp="$venv/.release-requirements.sha256"
wanted="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$here/requirements.txt"
  echo "$wanted" >"$stamp"
fi
if [ -z "${BUNDLE_DIR:-}" ]; then
  export BUNDLE_DIR="$target/release-bundle/test-dist"
  rm -rf "$BUNDLE_DIR"
  scripts/release --version 0.0.0-test --out "$BUNDLE_DIR" >/dev/null
fi
export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" -m pytest -p no:cacheprovider --rootdir "$here/tests" "$here/tests" "$@"
