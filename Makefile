.PHONY: run test fuzz bench build

# How long `make fuzz` runs each fuzz target: a Go duration or a count (20000x).
FUZZTIME ?= 30s

# Start the provider on the embedded SQLite default.
run:
	go run ./cmd/commonsid serve

# Every check and test (starts PostgreSQL when needed); the fuzz targets run
# on their seed corpora as ordinary tests. Each phase prints its duration.
test:
	bash scripts/test.sh

# Fuzz every target for FUZZTIME each, with its own time limit; prints each
# duration. One package or target: scripts/fuzz.sh ./did FuzzResolve
fuzz:
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

# Benchmarks (figures quoted in docs/operations.md).
bench:
	go test -run '^$$' -bench . -benchtime 2s ./did ./identity ./cmd/commonsid

# The binary the Dockerfile builds: static, with the module version and
# commit from the build information (commonsid version).
build:
	CGO_ENABLED=0 go build -trimpath -buildvcs=auto -o commonsid ./cmd/commonsid
