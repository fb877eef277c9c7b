.PHONY: run test bench build

# Start the provider on the embedded SQLite default.
run:
	go run ./cmd/commonsid serve

# Every check and test (starts PostgreSQL when needed).
test:
	bash scripts/test.sh

# Benchmarks (figures quoted in docs/operations.md).
bench:
	go test -run '^$$' -bench . -benchtime 2s ./did ./identity ./cmd/commonsid

build:
	go build -o commonsid ./cmd/commonsid
