#!/usr/bin/env bash
# Lint, render and validate the biometric-passkey Helm chart.
#
# No helm binary, cluster or Docker is needed: helm-python-sdk embeds Helm's
# Go library and kubernetes-validate ships the Kubernetes schemas. promtool,
# which checks the alert rules, comes from Debian's prometheus package,
# installed when missing.
# Tools go to a virtualenv under ${CARGO_TARGET_DIR:-target}/helm-venv
# (relative to the repository root), reused across runs. Extra arguments are
# passed to pytest, e.g. `bash deploy/helm/test.sh -k schema -x`.
set -euo pipefail

helm_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$helm_dir/../.." && pwd)"
cd "$repo_root"

target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in
  /*) ;;
  *) target_dir="$repo_root/$target_dir" ;;
esac
venv="$target_dir/helm-venv"
requirements="$helm_dir/tests/requirements.txt"
python="${PYTHON:-python3}"

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "test.sh: $python is older than Python 3.10 (required by helm-python-sdk)" >&2
  exit 1
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "test.sh: creating $venv"
  mkdir -p "$target_dir"
  "$python" -m venv "$venv"
fi

# Reinstall only when requirements.txt changed since the last install.
stamp="$venv/.requirements.sha256"
wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
  echo "test.sh: installing $requirements"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    -r "$requirements"
  echo "$wanted" >"$stamp"
fi

# promtool (Debian's prometheus package) checks and unit-tests the alert
# rules the chart ships; not needed to only collect the tests.
case " $* " in
  *" --co "* | *" --collect-only "*) ;;
  *)
    if ! command -v promtool >/dev/null; then
      echo "test.sh: installing promtool (Debian's prometheus package)" >&2
      sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    fi
    ;;
esac

export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" -m pytest \
  -c "$helm_dir/tests/pytest.ini" \
  --rootdir "$helm_dir/tests" \
  -p no:cacheprovider \
  "$helm_dir/tests" "$@"
