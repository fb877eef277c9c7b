package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/onecommons/commonsid/keys"
)

const keysUsage = "usage: commonsid keys list | rotate [--alg ES256|EdDSA|RS256] | retire <kid> | rotate-kek"

func runKeys(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 {
		return usagef(keysUsage)
	}
	sub, args := args[0], args[1:]
	var alg string
	var asJSON bool
	var extra func(*flag.FlagSet)
	switch sub {
	case "-h", "--help", "help":
		fmt.Fprintln(c.stdout, keysUsage)
		return nil
	case "list":
		extra = func(fs *flag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "print JSON") }
	case "retire":
	case "rotate-kek":
		return runRotateKEK(ctx, c, args)
	case "rotate":
		extra = func(fs *flag.FlagSet) {
			fs.StringVar(&alg, "alg", keys.DefaultAlg, "algorithm of the new key: ES256, EdDSA or RS256")
		}
	default:
		return usagef("unknown keys command %q; %s", sub, keysUsage)
	}
	open := openForCommand
	if sub == "list" {
		open = openForReading
	}
	cl, fs, err := open(ctx, c, "keys "+sub, args, extra)
	if err != nil {
		return err
	}
	defer cl.Close()
	if _, err := cl.keys.Ensure(ctx, keys.DefaultAlg); err != nil {
		return err
	}
	switch sub {
	case "rotate":
		if fs.NArg() > 0 {
			return usagef("unexpected argument %q", fs.Arg(0))
		}
		k, err := cl.keys.Rotate(ctx, alg)
		if errors.Is(err, keys.ErrUnsupportedAlg) {
			return usagef("--alg: %v", err)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "new active %s key %s; the previous one stays published until retired\n", k.Alg, k.KID)
		return nil
	case "retire":
		if fs.NArg() != 1 {
			return usagef("usage: commonsid keys retire <kid>")
		}
		if err := cl.keys.Retire(ctx, fs.Arg(0)); err != nil {
			if isNotFound(err) {
				return fmt.Errorf("no signing key %q (see 'commonsid keys list')", fs.Arg(0))
			}
			return err
		}
		fmt.Fprintf(c.stdout, "retired key %s: it is no longer published\n", fs.Arg(0))
		return nil
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	ks, err := cl.keys.List(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		out := make([]keyJSON, 0, len(ks))
		for _, k := range ks {
			out = append(out, keyJSON{KID: k.KID, Alg: k.Alg, Status: k.Status, CreatedAt: k.CreatedAt, RotatedAt: k.RotatedAt, RetiredAt: k.RetiredAt, PublicJWK: json.RawMessage(k.PublicJWK)})
		}
		return printJSON(c, out)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALG\tSTATUS\tCREATED\tROTATED\tRETIRED")
	for _, k := range ks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.KID, k.Alg, k.Status, k.CreatedAt.Format("2006-01-02 15:04"), fmtTime(k.RotatedAt), fmtTime(k.RetiredAt))
	}
	return tw.Flush()
}

// keyJSON is the JSON shape of a signing key in keys list --json.
type keyJSON struct {
	KID       string          `json:"kid"`
	Alg       string          `json:"alg"`
	Status    string          `json:"status"`
	CreatedAt time.Time       `json:"created_at"`
	RotatedAt *time.Time      `json:"rotated_at"`
	RetiredAt *time.Time      `json:"retired_at"`
	PublicJWK json.RawMessage `json:"public_jwk,omitempty"`
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format("2006-01-02 15:04")
}
