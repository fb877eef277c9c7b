package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/terms"
)

const clientUsage = "usage: commonsid client create --name NAME --redirect-uri URI [--public] [--forked-from ID] | list | show ID | delete ID"

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func runClient(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 {
		return usagef(clientUsage)
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "-h", "--help", "help":
		fmt.Fprintln(c.stdout, clientUsage)
		return nil
	case "create":
		return clientCreate(ctx, c, args)
	case "list", "show", "delete":
	default:
		return usagef("unknown client command %q; %s", sub, clientUsage)
	}
	open := openForCommand
	if sub != "delete" {
		open = openForReading
	}
	var asJSON bool
	var extra func(*flag.FlagSet)
	if sub != "delete" {
		// show prints JSON with or without it.
		extra = func(fs *flag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "print JSON") }
	}
	cl, fs, err := open(ctx, c, "client "+sub, args, extra)
	if err != nil {
		return err
	}
	defer cl.Close()
	switch sub {
	case "list":
		if fs.NArg() > 0 {
			return usagef("unexpected argument %q", fs.Arg(0))
		}
		cs, err := cl.db.ListClients(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			out := make([]map[string]any, 0, len(cs))
			for _, sc := range cs {
				out = append(out, clientJSON(sc))
			}
			return printJSON(c, out)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLIENT_ID\tNAME\tAUTH\tREDIRECT URIS")
		for _, sc := range cs {
			var md oidc.Metadata
			json.Unmarshal(sc.Metadata, &md)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", sc.ClientID, md.ClientName, md.TokenEndpointAuthMethod, strings.Join(md.RedirectURIs, " "))
		}
		return tw.Flush()
	}
	if fs.NArg() != 1 {
		return usagef("usage: commonsid client %s <client_id>", sub)
	}
	id := fs.Arg(0)
	if sub == "delete" {
		if err := cl.db.DeleteClient(ctx, id); err != nil {
			if isNotFound(err) {
				return fmt.Errorf("no client %q", id)
			}
			return err
		}
		fmt.Fprintf(c.stdout, "deleted client %s and every token issued to it\n", id)
		return nil
	}
	sc, err := cl.db.GetClient(ctx, id)
	if err != nil {
		if isNotFound(err) {
			return fmt.Errorf("no client %q", id)
		}
		return err
	}
	return printJSON(c, clientJSON(sc))
}

// clientJSON is the JSON shape of a client in client show and client
// list --json: its registered metadata (RFC 7591 names, without the
// internal x_ ones) with client_id and client_id_issued_at.
func clientJSON(sc *oidc.StoredClient) map[string]any {
	md := map[string]any{}
	json.Unmarshal(sc.Metadata, &md)
	if f, ok := md["x_federation"]; ok {
		md["federation"] = f // registered automatically through OpenID Federation (autoreg.go)
	}
	for k := range md {
		if strings.HasPrefix(k, "x_") {
			delete(md, k)
		}
	}
	md["client_id"] = sc.ClientID
	md["client_id_issued_at"] = sc.CreatedAt.Unix()
	// Its standing with the commons' terms (oidc/terms.go).
	if label, missing, err := oidc.TermsOf(sc.Metadata); err == nil {
		md["commons_terms"], md["outside_terms"] = label, len(missing) > 0
		if len(missing) > 0 {
			md["commons_terms_missing"] = missing
		}
	}
	return md
}

// printJSON prints v as indented JSON: the --json output of list and show
// commands (a list is an array, empty rather than null).
func printJSON(c *cli, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.stdout, string(b))
	return err
}

func clientCreate(ctx context.Context, c *cli, args []string) error {
	var (
		req         oidc.RegisterRequest
		redirects   multi
		postLogout  multi
		grants      multi
		public      bool
		name        string
		forkedFrom  string
		subjectType string
		scope       string
		sourceCode  string
		policy      string
		tos         string
		commitments string
		forkReason  string
		secretStdin bool
	)
	extra := func(fs *flag.FlagSet) {
		fs.StringVar(&name, "name", "", "client_name shown to people (required)")
		fs.Var(&redirects, "redirect-uri", "redirect URI (repeatable)")
		fs.Var(&postLogout, "post-logout-redirect-uri", "post-logout redirect URI (repeatable)")
		fs.Var(&grants, "grant", "grant type: authorization_code (default), refresh_token, client_credentials (repeatable)")
		fs.BoolVar(&public, "public", false, "public client: no secret, PKCE required")
		fs.StringVar(&forkedFrom, "forked-from", "", "client_id of the service this one is a fork of")
		fs.StringVar(&subjectType, "subject-type", "", "pairwise (default) or public")
		fs.StringVar(&scope, "scope", "", "extra scopes this client may ask for, space-separated")
		fs.StringVar(&sourceCode, "source-code-uri", "", "where the service's source code is published")
		fs.StringVar(&policy, "policy-uri", "", "the service's privacy policy")
		fs.StringVar(&tos, "tos-uri", "", "the service's terms of service")
		fs.StringVar(&commitments, "commitments", "", "the service's commons_commitments document: JSON, or @FILE (docs/commitments.schema.json); without it, or without source, policy and terms, the service is registered outside the commons' terms")
		fs.StringVar(&forkReason, "fork-reason", "", "commons_fork_reason: why a fork publishes its parent's source code")
		fs.BoolVar(&secretStdin, "secret-stdin", false, "read a client secret (32 bytes or more) from standard input instead of generating one")
	}
	cl, fs, err := openForCommand(ctx, c, "client create", args, extra)
	if err != nil {
		return err
	}
	defer cl.Close()
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if name == "" {
		return usagef("--name is required")
	}
	req.ClientName, req.RedirectURIs, req.PostLogoutRedirectURIs = name, redirects, postLogout
	req.ForkedFrom, req.SubjectType, req.Scope, req.SourceCodeURI, req.PolicyURI = forkedFrom, subjectType, scope, sourceCode, policy
	req.GrantTypes = grants
	req.TOSURI, req.CommonsForkReason = tos, forkReason
	if commitments != "" {
		raw := []byte(commitments)
		if file, ok := strings.CutPrefix(commitments, "@"); ok {
			if raw, err = readCommitments(file); err != nil {
				return err
			}
		}
		req.CommonsCommitments = raw
	}
	if len(grants) == 0 && len(redirects) > 0 {
		req.GrantTypes = []string{"authorization_code", "refresh_token"}
	}
	if public {
		req.TokenEndpointAuthMethod = "none"
	}
	if secretStdin {
		if req.ClientSecret, err = readPassword(c.stdin); err != nil {
			return err
		}
	}
	// An operator may register a service outside the commons' terms
	// (commons_terms: outside in the answer).
	g := &oidc.Registrar{Store: cl.db, Issuer: cl.cfg.Issuer, Outbound: cl.cfg.Outbound(cl.log).Client, Now: time.Now, RemoteService: cl.remoteService,
		Operator: true}
	out, err := g.Register(ctx, &req)
	var me *oidc.MetadataError
	if errors.As(err, &me) {
		return fmt.Errorf("%s", me.Description)
	}
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Fprintln(c.stdout, string(b))
	return nil
}

// readCommitments reads a commitments document from a file, bounded.
func readCommitments(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--commitments: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, terms.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("--commitments: %w", err)
	}
	if len(b) > terms.MaxSize {
		return nil, fmt.Errorf("--commitments: %s is longer than %d bytes", path, terms.MaxSize)
	}
	return b, nil
}
