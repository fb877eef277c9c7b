package oidfed_test

import (
	"errors"
	"testing"
	"time"

	"github.com/onecommons/commonsid/oidfed"
)

// FuzzParse: whatever the input, Parse and Verify return a statement that
// keeps the rules or an error of the package's kinds, and never panic.
// The seed corpus is in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	k := newKey(f, "fuzz")
	ks := k.set()
	now := time.Unix(1764633600, 0)
	st := &oidfed.Statement{Issuer: "https://anchor.example", Subject: "https://cloud.example", IssuedAt: now.Unix(), Expiry: now.Add(time.Hour).Unix(),
		JWKS: &ks, AuthorityHints: []string{"https://anchor.example"}}
	raw, err := oidfed.Sign(st, k.sk)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(raw))
	f.Add([]byte("a.b.c"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, fn := range []func() (*oidfed.Statement, error){
			func() (*oidfed.Statement, error) { return oidfed.Parse(in) },
			func() (*oidfed.Statement, error) { return oidfed.Verify(in, &ks, now) },
		} {
			s, err := fn()
			if err != nil {
				if !errors.Is(err, oidfed.ErrInvalid) && !errors.Is(err, oidfed.ErrExpired) && !errors.Is(err, oidfed.ErrTooLarge) {
					t.Fatalf("an error of no kind: %v", err)
				}
				continue
			}
			if len(in) > oidfed.MaxStatementBytes {
				t.Fatal("an oversized statement was accepted")
			}
			if oidfed.CheckEntityID(s.Issuer) != nil || oidfed.CheckEntityID(s.Subject) != nil || s.Expiry <= s.IssuedAt || s.JWKS == nil || len(s.JWKS.Keys) == 0 || s.KeyID() == "" {
				t.Fatalf("a statement breaking the rules was accepted: %+v", s)
			}
		}
	})
}
