package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/store"
)

// testDIDLogs: a did:webvh account is stored with its log in one
// transaction; the log is found by DID and by name, verifies, and goes with
// the account's own transaction.
func testDIDLogs(t *testing.T, s Store) {
	svc := identity.NewService(s, cheapSealer{}, "https://cloud.example:8443/id")
	svc.Argon2 = identity.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	svc.DIDMethod, svc.DIDLogs = identity.DIDMethodWebVH, s
	a, err := svc.Create(ctx, identity.CreateParams{Handle: "vera", Email: "v@example.org", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a.DID, "did:webvh:") || !strings.Contains(a.DID, ":cloud.example%3A8443:id:accounts:") {
		t.Fatalf("DID %s, want did:webvh:{SCID}:cloud.example%%3A8443:id:accounts:{name}", a.DID)
	}
	l, err := s.GetDIDLog(ctx, a.DID)
	if err != nil {
		t.Fatal(err)
	}
	if l.Version != 1 || !strings.HasSuffix(a.DID, ":"+l.Name) {
		t.Fatalf("log version %d name %q", l.Version, l.Name)
	}
	byName, err := s.GetDIDLogByName(ctx, l.Name)
	if err != nil || string(byName.Log) != string(l.Log) || byName.DID != a.DID {
		t.Fatalf("by name: %+v %v", byName, err)
	}
	res, err := webvh.Verify(l.Log, webvh.Options{DID: a.DID})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Metadata.Portable {
		t.Error("the account's DID is not portable")
	}
	// The person signatures verify against the logged document.
	k, err := svc.SigningKey(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := did.Sign(k.Private, k.KeyID, []byte(`{"x":1}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &did.Resolver{WebVH: func(_ context.Context, url string) ([]byte, error) {
		if url != "https://cloud.example:8443/id/accounts/"+l.Name+"/did.jsonl" {
			return nil, webvh.ErrNotFound
		}
		return l.Log, nil
	}}
	doc, err := r.Resolve(ctx, a.DID)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := did.VerifyWithDocument(doc, jws); err != nil || v.DID != a.DID {
		t.Fatalf("person signature: %v", err)
	}

	// A taken handle stores neither an account nor a log.
	if _, err := svc.Create(ctx, identity.CreateParams{Handle: "vera", Email: "v@example.org", Password: "correct horse battery"}); !errors.Is(err, identity.ErrHandleTaken) {
		t.Fatalf("duplicate handle: %v", err)
	}
	// A log that cannot be stored (its SCID is taken) leaves no account.
	b := &identity.Account{DID: "did:webvh:" + l.SCID + ":other.example:accounts:wes", Handle: "wes", Status: identity.StatusActive, HomeIssuer: svc.Issuer,
		CreatedAt: l.UpdatedAt, UpdatedAt: l.UpdatedAt}
	if err := s.CreateAccountWithDIDLog(ctx, b, &identity.DIDLog{DID: b.DID, SCID: l.SCID, Name: "wes", Log: []byte("x"), Version: 1, UpdatedAt: l.UpdatedAt}); err == nil {
		t.Fatal("a second log of a taken SCID was stored")
	}
	if _, err := s.GetAccount(ctx, b.DID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("account of a refused log: %v", err)
	}
	if _, err := s.GetDIDLogByName(ctx, "nosuchname"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown name: %v", err)
	}
}
