#!/usr/bin/env bash
# Runs every fuzz target of the module, one after the other, each for
# FUZZTIME (default 30s; a Go duration, or a count such as 20000x) with its
# own time limit, and prints how long each took. `make test` runs the seed
# corpora (f.Add and testdata/fuzz) as ordinary tests; this is the long run.
#
#   FUZZTIME=5m scripts/fuzz.sh            every target for 5 minutes
#   scripts/fuzz.sh ./did FuzzResolve      one package, or one target of it
#
# A failing input is written under the package's testdata/fuzz/ by go test:
# commit it with the fix so that it stays in the seed corpus.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME=${FUZZTIME:-30s}

# seconds turns a Go duration of one unit (90s, 5m, 1h) into seconds; a
# count (20000x) has no duration and gives 0.
seconds() {
  case "$1" in
    *x) echo 0 ;;
    *ms) echo 1 ;;
    *s) echo "${1%s}" ;;
    *m) echo $(( ${1%m} * 60 )) ;;
    *h) echo $(( ${1%h} * 3600 )) ;;
    *) echo "FUZZTIME=$1: use a duration such as 30s, 5m or 1h, or a count such as 20000x" >&2; exit 2 ;;
  esac
}
fuzz_seconds=$(seconds "$FUZZTIME")
[[ "$fuzz_seconds" =~ ^[0-9]+$ ]] || { echo "FUZZTIME=$FUZZTIME: use a whole number of s, m or h, or a count such as 20000x" >&2; exit 2; }
# The run's limit: the fuzzing time plus ten minutes for the seed corpus
# and a busy machine (a counted run gets twenty). FUZZ_TIMEOUT overrides it.
if [ "$fuzz_seconds" -gt 0 ]; then
  limit=$(( fuzz_seconds + 600 ))
else
  limit=1200
fi
limit=$(seconds "${FUZZ_TIMEOUT:-${limit}s}")

only_pkg=${1:-}
only_target=${2:-}

# Targets: "dir name" for each func FuzzX(f *testing.F) in a _test.go file.
targets=$(grep -rEo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . \
  | sed -E 's#^\./(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*#\1 \2#' | sort)
[ -n "$targets" ] || { echo "no fuzz targets found" >&2; exit 1; }

total_start=$SECONDS
failed=()
ran=0
while read -r dir target; do
  pkg=./$dir
  if [ -n "$only_pkg" ] && [ "$pkg" != "${only_pkg%/}" ]; then continue; fi
  if [ -n "$only_target" ] && [ "$target" != "$only_target" ]; then continue; fi
  ran=$((ran + 1))
  printf '\n== %s %s (fuzztime %s, limit %d s)\n' "$pkg" "$target" "$FUZZTIME" "$limit"
  start=$SECONDS
  log=$(mktemp)
  # go test's -timeout bounds the fuzzing run; timeout(1) also bounds the
  # build before it.
  if timeout --kill-after=30s $((limit + 300)) \
      go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -timeout "${limit}s" "$pkg" 2>&1 | tee "$log"; then
    status=ok
  elif grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
    # A timed run can end with a spurious "context deadline exceeded"
    # when its time is up mid-input: no input failed.
    status="ok (ended mid-input)"
  else
    status=FAILED
    failed+=("$pkg $target")
  fi
  rm -f "$log"
  printf '(%s %s: %s, %d s)\n' "$pkg" "$target" "$status" $((SECONDS - start))
done <<<"$targets"

[ "$ran" -gt 0 ] || { echo "no fuzz target matches ${only_pkg} ${only_target}" >&2; exit 2; }
printf '\n(fuzz: %d targets, %d s)\n' "$ran" $((SECONDS - total_start))
if [ ${#failed[@]} -gt 0 ]; then
  printf 'failed: %s\n' "${failed[@]}"
  exit 1
fi
