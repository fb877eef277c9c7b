package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/safehttp"
)

// The DID method of new accounts, COMMONSID_ACCOUNT_DID / --account-did:
// auto (the default) is webvh when the cloud knows its issuer and the
// issuer's host is a DNS name (did:webvh forbids IP addresses), key
// otherwise; webvh gives each new account a did:webvh DID whose log the
// cloud serves, witnessed by its peers (identity/webvh.go), and refuses an
// issuer that cannot host one; key gives it the did:key of its custodial
// key, which can never rotate. Existing accounts keep their DID either way.

// validateAccountDID checks COMMONSID_ACCOUNT_DID against the issuer.
func validateAccountDID(method, issuer string) error {
	switch method {
	case "", accountDIDAuto:
		return nil
	case identity.DIDMethodKey, identity.DIDMethodWebVH:
	default:
		return fmt.Errorf("COMMONSID_ACCOUNT_DID %q: use auto, webvh or key", method)
	}
	if err := identity.CheckDIDMethod(method, issuer); err != nil {
		return fmt.Errorf("COMMONSID_ACCOUNT_DID=webvh: %w (give an issuer such as https://id.example.org, or http://localhost:PORT for development)", err)
	}
	return nil
}

// useAccountDID sets the DID method of the cloud's new accounts.
func (cl *cloud) useAccountDID() error {
	if err := validateAccountDID(cl.cfg.AccountDID, cl.cfg.Issuer); err != nil {
		return err
	}
	// Every cloud keeps DID logs: its peers' accounts', and those of
	// did:key accounts upgraded here, whatever the method of new accounts.
	cl.accounts.DIDLogs = cl.db
	switch cl.cfg.AccountDID {
	case identity.DIDMethodWebVH:
		cl.accounts.DIDMethod = identity.DIDMethodWebVH
	case "", accountDIDAuto:
		if cl.issuerKnown && identity.CheckDIDMethod(identity.DIDMethodWebVH, cl.cfg.Issuer) == nil {
			cl.accounts.DIDMethod = identity.DIDMethodWebVH
		}
	}
	return nil
}

// accountDIDAuto is the default DID method setting: webvh where the issuer
// allows it.
const accountDIDAuto = "auto"

// webvhNeedsIssuer refuses to create a did:webvh account before the cloud
// knows its issuer: the DID names the issuer's host for good, while an
// account made before the first serve moves under whatever issuer serve
// records.
func (cl *cloud) webvhNeedsIssuer() error {
	if cl.accounts.DIDMethod == identity.DIDMethodWebVH && !cl.issuerKnown {
		return fmt.Errorf("COMMONSID_ACCOUNT_DID=webvh: this cloud has no recorded issuer yet, and a did:webvh DID names it for good: give --issuer (or COMMONSID_ISSUER), or start serve once first")
	}
	return nil
}

// webvhFetcher fetches did:webvh logs and witness files through the
// guarded client sc, within the did:webvh size limits. As for did:web, a
// DID on a loopback host (localhost, *.localhost) is fetched over plain
// http, from localhost: the guarded client reaches it only when the
// cloud's own issuer is on a loopback host.
func webvhFetcher(sc *safehttp.Client) did.WebVHFetcher {
	return func(ctx context.Context, raw string) ([]byte, error) {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "https" {
			return nil, fmt.Errorf("not an https URL: %q", raw)
		}
		if h := strings.ToLower(u.Hostname()); safehttp.IsLoopbackHost(h) {
			u.Scheme = "http"
			if strings.HasSuffix(h, ".localhost") {
				host := "localhost"
				if p := u.Port(); p != "" {
					host += ":" + p
				}
				u.Host = host
			}
		}
		max := int64(webvh.DefaultLimits.MaxLogBytes)
		if strings.HasSuffix(u.Path, "/did-witness.json") {
			max = int64(webvh.DefaultLimits.MaxWitnessBytes)
		}
		return sc.Get(ctx, u.String(), "text/jsonl, application/json", max)
	}
}

// webvhFallback is where the cloud's resolver turns when the home of a
// did:webvh DID cannot be reached or answers an error: the best verified
// copy of its log (witness threshold met, rule 2 kept, identity.PreferLog)
// among this cloud's did_logs row and its peers' /federation/v1/dids/{scid},
// asked through f's guarded client.
func webvhFallback(f *federation.Federation) did.WebVHFallback {
	return func(ctx context.Context, id string, cause error) (*webvh.Result, error) {
		parsed, err := webvh.ParseDID(id)
		if err != nil {
			return nil, err
		}
		c, err := f.LatestDIDLog(ctx, parsed.SCID)
		if err != nil {
			return nil, err
		}
		from := c.From
		if from == "" {
			from = "this cloud"
		}
		if f.Log != nil {
			f.Log.InfoContext(ctx, "resolved a did:webvh DID from a copy: its home failed", "did", id, "from", from,
				"version", c.Result.Metadata.VersionID, "cause", identity.RootCause(cause))
		}
		return c.Result, nil
	}
}

// withWebVHFallback returns a copy of r whose did:webvh resolution falls
// back on the copies f knows (webvhFallback).
func withWebVHFallback(r *did.Resolver, f *federation.Federation) *did.Resolver {
	c := *r
	c.WebVHFallback = webvhFallback(f)
	return &c
}

// didMethod is the method name of a DID ("key", "webvh", …).
func didMethod(id string) string {
	rest, ok := strings.CutPrefix(id, "did:")
	if !ok {
		return ""
	}
	m, _, _ := strings.Cut(rest, ":")
	return m
}

// resolveForShow resolves an account's DID for `user show` without the
// network: did:key from the key, did:webvh from the log stored here (the
// log version is returned too). A did:webvh replica, whose log its home
// serves, gives no document.
func (cl *cloud) resolveForShow(ctx context.Context, a *identity.Account) (*did.Document, int, error) {
	if !identity.IsWebVH(a.DID) {
		var r did.Resolver
		doc, err := r.Resolve(ctx, a.DID)
		return doc, 0, err
	}
	l, err := cl.db.GetDIDLog(ctx, a.DID)
	if isNotFound(err) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	// The current document of the stored log (after a move, of the
	// current DID), with its witness file when it has one.
	var witness func() ([]byte, error)
	if len(l.Witness) > 0 {
		witness = func() ([]byte, error) { return l.Witness, nil }
	}
	res, err := webvh.Verify(l.Log, webvh.Options{Witness: witness})
	if err != nil {
		return nil, l.Version, fmt.Errorf("resolve %s: %w", a.DID, err)
	}
	doc, err := did.WebVHDocument(res)
	return doc, l.Version, err
}
