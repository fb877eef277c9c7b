package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/onecommons/commonsid/admin"
)

// The CLI acts on a remote cloud through its admin API (package admin)
// when it is given the API's URL, before the command:
//
//	commonsid --url https://admin.example.org:8090 --admin-token-file F user list
//
// or with COMMONSID_ADMIN_URL set. The token is --admin-token-file, else
// COMMONSID_ADMIN_TOKEN_FILE, else COMMONSID_ADMIN_TOKEN (an admin token
// or an access token with the admin scope).

// remoteCommands are the commands that work remotely.
var remoteCommands = map[string][]string{
	"user":   {"list", "show", "disable", "enable", "delete"},
	"client": {"list", "show", "delete"},
	"peer":   {"list"},
	"keys":   {"list"},
}

// runRemote handles a remote invocation; ok is false when args are for the
// local CLI.
func runRemote(ctx context.Context, c *cli, args []string) (code int, ok bool) {
	var base, tokenFile string
	i := 0
	for i < len(args) {
		name, val, has := strings.Cut(args[i], "=")
		if name != "--url" && name != "-url" && name != "--admin-token-file" && name != "-admin-token-file" {
			break
		}
		if !has {
			if i+1 >= len(args) {
				fmt.Fprintf(c.stderr, "commonsid: flag %s needs a value\n", name)
				return exitUsage, true
			}
			val = args[i+1]
			i++
		}
		i++
		if strings.HasSuffix(name, "url") {
			base = val
		} else {
			tokenFile = val
		}
	}
	given := i > 0
	if base == "" {
		base = c.env("COMMONSID_ADMIN_URL")
	}
	if base == "" {
		if given {
			fmt.Fprintln(c.stderr, "commonsid: --admin-token-file needs --url (or COMMONSID_ADMIN_URL)")
			return exitUsage, true
		}
		return 0, false
	}
	rest := args[i:]
	if len(rest) == 0 {
		fmt.Fprintln(c.stderr, "commonsid: a command is expected after --url (run 'commonsid help')")
		return exitUsage, true
	}
	subs, known := remoteCommands[rest[0]]
	if !known {
		if given {
			fmt.Fprintf(c.stderr, "commonsid: %s does not work remotely; only user, client, peer and keys (see docs/operations.md)\n", rest[0])
			return exitUsage, true
		}
		return 0, false // COMMONSID_ADMIN_URL is for the commands that work remotely
	}
	if len(rest) < 2 || !contains(subs, rest[1]) {
		fmt.Fprintf(c.stderr, "commonsid %s: remotely, only %s %s\n", rest[0], rest[0], strings.Join(subs, "|"))
		return exitUsage, true
	}
	rc, err := newRemote(c, base, tokenFile)
	if err == nil {
		err = rc.run(ctx, rest[0], rest[1], rest[2:])
	}
	if err == nil {
		return exitOK, true
	}
	fmt.Fprintf(c.stderr, "commonsid %s %s: %s\n", rest[0], rest[1], oneLine(err))
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage, true
	}
	return exitError, true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

type remote struct {
	c     *cli
	base  string
	token string
	http  *http.Client
}

func newRemote(c *cli, base, tokenFile string) (*remote, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" || u.User != nil {
		return nil, usagef("--url %q must be the admin API's base URL, such as https://admin.example.org:8090", base)
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		return nil, usagef("--url %q: plain http is allowed only to a loopback address (the token would travel in clear)", base)
	}
	if tokenFile == "" {
		tokenFile = c.env("COMMONSID_ADMIN_TOKEN_FILE")
	}
	var tok string
	if tokenFile != "" {
		if tok, err = readTokenFile(tokenFile); err != nil {
			return nil, fmt.Errorf("--admin-token-file: %w", err)
		}
	} else if tok = c.env("COMMONSID_ADMIN_TOKEN"); tok == "" {
		return nil, usagef("no token: give --admin-token-file, COMMONSID_ADMIN_TOKEN_FILE or COMMONSID_ADMIN_TOKEN")
	}
	return &remote{c: c, base: u.String(), token: tok, http: &http.Client{Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

// call sends one request; out (when not nil) receives the JSON answer.
func (r *remote) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s (%d %s)", e.Description, resp.StatusCode, e.Error)
		}
		return fmt.Errorf("the admin API answered %s", resp.Status)
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("the admin API's answer: %w", err)
		}
	}
	return nil
}

// parseRemote takes --json and positional arguments.
func parseRemote(args []string, want int, usage string) (asJSON bool, pos []string, err error) {
	for i, a := range args {
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			goto done
		case a == "--json" || a == "-json":
			asJSON = true
		case strings.HasPrefix(a, "-"):
			return false, nil, usagef("flag %s is not available remotely; %s", a, usage)
		default:
			pos = append(pos, a)
		}
	}
done:
	if len(pos) != want {
		return false, nil, usagef("%s", usage)
	}
	return asJSON, pos, nil
}

func (r *remote) run(ctx context.Context, cmd, sub string, args []string) error {
	usage := fmt.Sprintf("usage: commonsid --url URL %s %s", cmd, sub)
	want := 1
	if sub == "list" {
		want = 0
	} else {
		usage += " <name>"
	}
	asJSON, pos, err := parseRemote(args, want, usage)
	if err != nil {
		return err
	}
	w := r.c.stdout
	switch cmd + " " + sub {
	case "user list":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		if !asJSON {
			fmt.Fprintln(tw, "HANDLE\tSTATUS\tCREATED\tDID")
		}
		arr := &jsonArray{w: w} // as `user list --json` prints it
		for after := ""; ; {
			var page struct {
				Accounts  []accountJSON `json:"accounts"`
				NextAfter string        `json:"next_after"`
			}
			q := url.Values{"limit": {fmt.Sprint(admin.MaxLimit)}}
			if after != "" {
				q.Set("after", after)
			}
			if err := r.call(ctx, http.MethodGet, "/admin/v1/accounts?"+q.Encode(), nil, &page); err != nil {
				return err
			}
			for _, a := range page.Accounts {
				if asJSON {
					if err := arr.add(a); err != nil {
						return err
					}
				} else {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Handle, a.Status, a.CreatedAt.Format("2006-01-02"), a.DID)
				}
			}
			if page.NextAfter == "" || page.NextAfter == after {
				break
			}
			after = page.NextAfter
		}
		if asJSON {
			return arr.close()
		}
		return tw.Flush()
	case "user show":
		var v json.RawMessage
		if err := r.call(ctx, http.MethodGet, "/admin/v1/accounts/"+url.PathEscape(pos[0]), nil, &v); err != nil {
			return err
		}
		return printRaw(r.c, v)
	case "user disable", "user enable":
		var a accountJSON
		if err := r.call(ctx, http.MethodPost, "/admin/v1/accounts/"+url.PathEscape(pos[0])+"/"+sub, nil, &a); err != nil {
			return err
		}
		fmt.Fprintf(w, "%sd account %s\n", sub, a.Handle)
		return nil
	case "user delete":
		if err := r.call(ctx, http.MethodDelete, "/admin/v1/accounts/"+url.PathEscape(pos[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(w, "deleted account %s\n", pos[0])
		return nil
	case "client list":
		var cs []map[string]any
		if err := r.call(ctx, http.MethodGet, "/admin/v1/clients", nil, &cs); err != nil {
			return err
		}
		if asJSON {
			return printJSON(r.c, cs)
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLIENT_ID\tNAME\tAUTH\tREDIRECT URIS")
		for _, m := range cs {
			var uris []string
			if l, ok := m["redirect_uris"].([]any); ok {
				for _, u := range l {
					uris = append(uris, fmt.Sprint(u))
				}
			}
			fmt.Fprintf(tw, "%v\t%v\t%v\t%s\n", m["client_id"], str(m["client_name"]), str(m["token_endpoint_auth_method"]), strings.Join(uris, " "))
		}
		return tw.Flush()
	case "client show":
		var v json.RawMessage
		if err := r.call(ctx, http.MethodGet, "/admin/v1/clients/"+url.PathEscape(pos[0]), nil, &v); err != nil {
			return err
		}
		return printRaw(r.c, v)
	case "client delete":
		if err := r.call(ctx, http.MethodDelete, "/admin/v1/clients/"+url.PathEscape(pos[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(w, "deleted client %s and every token issued to it\n", pos[0])
		return nil
	case "peer list":
		var ps []peerJSON
		if err := r.call(ctx, http.MethodGet, "/admin/v1/peers", nil, &ps); err != nil {
			return err
		}
		if asJSON {
			return printJSON(r.c, ps)
		}
		if len(ps) == 0 {
			fmt.Fprintln(w, "no peers")
			return nil
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ISSUER\tCURSOR\tLAST EVENT\tREJECTED\tQUARANTINED\tLAST ERROR")
		for _, p := range ps {
			last := "-"
			if p.LastEventAt != nil {
				last = p.LastEventAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\n", p.Issuer, p.Cursor, last, p.Rejected, p.Quarantined, p.LastError)
		}
		return tw.Flush()
	case "keys list":
		var ks []keyJSON
		if err := r.call(ctx, http.MethodGet, "/admin/v1/keys", nil, &ks); err != nil {
			return err
		}
		if asJSON {
			return printJSON(r.c, ks)
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KID\tALG\tSTATUS\tCREATED\tROTATED\tRETIRED")
		for _, k := range ks {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.KID, k.Alg, k.Status, k.CreatedAt.Format("2006-01-02 15:04"), fmtTime(k.RotatedAt), fmtTime(k.RetiredAt))
		}
		return tw.Flush()
	}
	return usagef("%s %s does not work remotely", cmd, sub)
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func printRaw(c *cli, v json.RawMessage) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, v, "", "  "); err != nil {
		return err
	}
	_, err := fmt.Fprintln(c.stdout, strings.TrimRight(buf.String(), "\n"))
	return err
}
