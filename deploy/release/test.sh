#!/usr/bin/env bash
# Builds the release bundle with scripts/release into a scratch folder and
# checks it: checksums, manifest, images (inspected with skopeo and umoci, and
# the core image's root filesystem started against PostgreSQL), SBOM, chart.
# Needs the test PostgreSQL cluster (scripts/pg) and root (for chroot).
# Extra arguments go to pytest. BUNDLE_DIR=... checks an existing bundle.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
venv="$target/helm-venv"
bash deploy/helm/test.sh --co -q >/dev/null # creates the virtualenv
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
