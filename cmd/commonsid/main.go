// Command commonsid is the Commons ID identity provider: the server and its
// administration commands. Run `commonsid help` for the list.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
