# shellcheck shell=bash
# Sourced by scripts/test.sh: installs the relying-party libraries of the
# interop matrix (cmd/commonsid/interop_test.go) when they are missing:
# openid-client and oauth4webapi from npm (exact versions from the committed
# package-lock.json, into cmd/commonsid/testdata/interop/node/node_modules),
# and Debian's python3-authlib for /usr/bin/python3, with python3-requests,
# which Authlib's requests client needs but the package does not pull in.
# Quick when everything is there; every download is bounded in time.
ensure_interop() {
  local dir=cmd/commonsid/testdata/interop/node
  local lock="$dir/package-lock.json" stamp="$dir/node_modules/.package-lock.json"
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "interop: node and npm are needed (Node 20 or later); interop tests will fail" >&2
    return 1
  fi
  # npm ci writes node_modules/.package-lock.json; when it is newer than the
  # committed lock and both libraries are there, nothing needs doing.
  if [ ! -f "$dir/node_modules/openid-client/package.json" ] || [ ! -f "$dir/node_modules/oauth4webapi/package.json" ] ||
     [ ! -f "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
    echo "interop: npm ci in $dir" >&2
    (cd "$dir" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) || {
      echo "interop: npm ci failed; interop tests will fail" >&2
      return 1
    }
  fi
  if ! /usr/bin/python3 -c 'import authlib, requests' >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
      echo "interop: python3-authlib or python3-requests is missing and cannot be installed here; interop tests will fail" >&2
      return 1
    fi
    echo "interop: installing Debian's python3-authlib and python3-requests" >&2
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get install -y -qq python3-authlib python3-requests >/dev/null ||
      { timeout 300 apt-get update -qq >/dev/null && timeout 300 apt-get install -y -qq python3-authlib python3-requests >/dev/null; } || {
      echo "interop: apt-get install python3-authlib python3-requests failed; interop tests will fail" >&2
      return 1
    }
  fi
}
