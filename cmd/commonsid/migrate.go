package main

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"
)

func runMigrate(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 || (args[0] != "up" && args[0] != "status") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(c.stdout, "usage: commonsid migrate up|status [--data DIR] [--db DSN]")
			return nil
		}
		return usagef("usage: commonsid migrate up|status [--data DIR] [--db DSN]")
	}
	sub := args[0]
	cfg := &Config{}
	fs := flag.NewFlagSet("migrate "+sub, flag.ContinueOnError)
	cfg.storageFlags(fs, c.env)
	if err := c.parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if err := cfg.Validate(false); err != nil {
		return usagef("%v", err)
	}
	log := newLogger(cfg, c.stderr)
	cl, err := openCloud(ctx, cfg, log, sub == "up")
	if err != nil {
		return err
	}
	defer cl.Close()
	st, err := cl.db.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tNAME\tSTATE\tAPPLIED AT")
	pending := 0
	for _, m := range st {
		state, at := "pending", ""
		if m.Applied {
			state, at = "applied", m.AppliedAt.UTC().Format("2006-01-02 15:04:05Z")
		} else {
			pending++
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", m.Version, m.Name, state, at)
	}
	tw.Flush()
	fmt.Fprintf(c.stdout, "%s: %d migrations, %d pending\n", cl.db.String(), len(st), pending)
	return nil
}
