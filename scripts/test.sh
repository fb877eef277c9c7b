#!/usr/bin/env bash
# Runs every check and test: gofmt, go vet, staticcheck, go mod tidy, then
# the test suite with the race detector against SQLite and PostgreSQL
# (started or made here when needed; see scripts/postgres.sh), fuzz seed
# corpora included. Long fuzzing is scripts/fuzz.sh (make fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/postgres.sh

STATICCHECK_VERSION=v0.8.2
export COMMONSID_TEST_REQUIRE_POSTGRES=1

# Each phase prints its name and, when the next one starts, how long it took.
phase_start=$SECONDS
phase_name=""
step() {
  [ -n "$phase_name" ] && printf '(%s: %d s)\n' "$phase_name" $((SECONDS - phase_start))
  phase_name="$*" phase_start=$SECONDS
  printf '\n== %s\n' "$*"
}
# The last phase, and the whole run, print theirs on exit, failed or not.
finish() {
  status=$?
  [ -n "$phase_name" ] && printf '(%s: %d s)\n' "$phase_name" $((SECONDS - phase_start))
  printf '(total: %d s, exit %d)\n' "$SECONDS" "$status"
}
trap finish EXIT

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './vendor/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

step "go mod tidy"
go mod tidy -diff

step "go vet"
go vet ./...

step "staticcheck $STATICCHECK_VERSION"
# staticcheck's own runner has been seen to panic on a cold cache (a crash
# inside the tool, not a finding); a crash is retried once, findings fail.
staticcheck() { go run "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" ./...; }
if ! out=$(staticcheck 2>&1); then
  if grep -q '^panic: ' <<<"$out"; then
    echo "staticcheck crashed; running it again"
    staticcheck
  else
    echo "$out"; exit 1
  fi
else
  [ -z "$out" ] || echo "$out"
fi

step "PostgreSQL"
ensure_postgres

step "Chromium (browser tests)"
. scripts/chromium.sh
ensure_chromium

step "interop libraries (openid-client, oauth4webapi, Authlib)"
. scripts/interop.sh
ensure_interop

step "go test -race ./..."
# Fuzz targets run here on their seed corpora (f.Add and testdata/fuzz) as
# ordinary tests; the long fuzzing runs are `make fuzz` (scripts/fuzz.sh).
# The integration tests of cmd/commonsid run in parallel (t.Parallel); they
# mostly wait on servers, databases and browsers, so four at a time keep two
# cores busy without starving any. The limit leaves room for a busy machine.
# The output is plain go test's (the output of failing tests only), then the
# ten slowest tests (scripts/testsummary).
go build -o "${TMPDIR:-/tmp}/commonsid-testsummary" ./scripts/testsummary
go test -race -count=1 -timeout 40m -parallel "${TEST_PARALLEL:-4}" -json "$@" ./... |
  "${TMPDIR:-/tmp}/commonsid-testsummary" -n 10
