# shellcheck shell=bash
# Sourced by scripts/test.sh: makes sure headless Chromium is installed for
# the browser tests (Debian's chromium package) and exports
# COMMONSID_TEST_CHROMIUM with its path.
ensure_chromium() {
  local bin
  bin=$(command -v chromium || command -v chromium-browser || true)
  if [ -z "$bin" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "chromium: installing Debian's chromium package" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    bin=$(command -v chromium || true)
  fi
  if [ -z "$bin" ]; then
    echo "chromium: not found and cannot be installed; browser tests will fail" >&2
    return 1
  fi
  export COMMONSID_TEST_CHROMIUM="$bin"
  export COMMONSID_TEST_REQUIRE_CHROMIUM=1
}
