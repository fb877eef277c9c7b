package main

import (
	"context"
	"errors"
)

// runBench is the load driver; see docs/benchmarks.md.
func runBench(ctx context.Context, c *cli, args []string) error {
	return errors.New("the bench command is not built yet")
}
