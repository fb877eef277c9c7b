package identity_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/onecommons/commonsid/identity"
)

func phc(m, t, p, saltLen, keyLen int) string {
	b := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", m, t, p,
		b.EncodeToString(make([]byte, saltLen)), b.EncodeToString(make([]byte, keyLen)))
}

// allocated runs fn and returns the bytes it allocated.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestParsePasswordHash: the parser accepts the documented range and refuses,
// as out of bounds or malformed, everything else.
func TestParsePasswordHash(t *testing.T) {
	for _, c := range []struct {
		name string
		phc  string
		want error // nil, ErrHashOutOfBounds or ErrMalformedHash
	}{
		{"current", phc(19456, 2, 1, 16, 32), nil},
		{"owasp m=46MiB t=1", phc(47104, 1, 1, 16, 32), nil},
		{"owasp m=7MiB t=5", phc(7168, 5, 1, 16, 32), nil},
		{"reference defaults", phc(65536, 3, 4, 16, 32), nil},
		{"smallest", phc(identity.Argon2MinMemory, 1, 1, 8, 16), nil},
		{"4 GiB", phc(4<<20, 1, 1, 16, 32), identity.ErrHashOutOfBounds},
		{"1 GiB", phc(1<<20, 1, 1, 16, 32), identity.ErrHashOutOfBounds},
		{"256 MiB 4 passes", phc(256<<10, 4, 1, 16, 32), identity.ErrHashOutOfBounds},
		{"64 passes", phc(19456, 64, 1, 16, 32), identity.ErrHashOutOfBounds},
		{"work over bound", phc(65536, 4, 1, 16, 32), identity.ErrHashOutOfBounds},
		{"too little memory", phc(64, 1, 1, 16, 32), identity.ErrHashOutOfBounds},
		{"zero passes", phc(19456, 0, 1, 16, 32), identity.ErrHashOutOfBounds},
		{"8 lanes", phc(19456, 2, 8, 16, 32), identity.ErrHashOutOfBounds},
		{"short salt", phc(19456, 2, 1, 4, 32), identity.ErrHashOutOfBounds},
		{"long salt", phc(19456, 2, 1, 65, 32), identity.ErrHashOutOfBounds},
		{"short key", phc(19456, 2, 1, 16, 8), identity.ErrHashOutOfBounds},
		{"long key", phc(19456, 2, 1, 16, 128), identity.ErrHashOutOfBounds},
		{"empty", "", identity.ErrMalformedHash},
		{"argon2i", strings.Replace(phc(19456, 2, 1, 16, 32), "argon2id", "argon2i", 1), identity.ErrMalformedHash},
		{"version 16", strings.Replace(phc(19456, 2, 1, 16, 32), "v=19", "v=16", 1), identity.ErrMalformedHash},
		{"version 019", strings.Replace(phc(19456, 2, 1, 16, 32), "v=19", "v=019", 1), identity.ErrMalformedHash},
		{"leading zero", strings.Replace(phc(19456, 2, 1, 16, 32), "m=19456", "m=019456", 1), identity.ErrMalformedHash},
		{"plus sign", strings.Replace(phc(19456, 2, 1, 16, 32), "t=2", "t=+2", 1), identity.ErrMalformedHash},
		{"order", strings.Replace(phc(19456, 2, 1, 16, 32), "m=19456,t=2", "t=2,m=19456", 1), identity.ErrMalformedHash},
		{"extra parameter", strings.Replace(phc(19456, 2, 1, 16, 32), "p=1", "p=1,keyid=x", 1), identity.ErrMalformedHash},
		{"huge number", strings.Replace(phc(19456, 2, 1, 16, 32), "m=19456", "m=99999999999999999999", 1), identity.ErrMalformedHash},
		{"padded salt", "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA==$" + base64.RawStdEncoding.EncodeToString(make([]byte, 32)), identity.ErrMalformedHash},
		{"not base64", "$argon2id$v=19$m=19456,t=2,p=1$!!!!!!!!!!!!$" + base64.RawStdEncoding.EncodeToString(make([]byte, 32)), identity.ErrMalformedHash},
		{"trailing field", phc(19456, 2, 1, 16, 32) + "$x", identity.ErrMalformedHash},
		{"very long", "$argon2id$v=19$m=19456,t=2,p=1$" + strings.Repeat("A", 10000) + "$AAAA", identity.ErrMalformedHash},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, err := identity.ParsePasswordHash(c.phc)
			if c.want == nil {
				if err != nil {
					t.Fatalf("ParsePasswordHash(%q) = %v, want accepted", c.phc, err)
				}
				if got := fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", h.Params.Memory, h.Params.Time, h.Params.Threads,
					base64.RawStdEncoding.EncodeToString(h.Salt), base64.RawStdEncoding.EncodeToString(h.Key)); got != c.phc {
					t.Fatalf("parsed %q back as %q", c.phc, got)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("ParsePasswordHash(%.80q) = %v, want %v", c.phc, err, c.want)
			}
			if ok, err := identity.CheckPassword("x", c.phc); ok || !errors.Is(err, c.want) {
				t.Fatalf("CheckPassword = %v, %v; want false, %v", ok, err, c.want)
			}
		})
	}
}

// TestHugeHashRefusedBeforeHashing: a 4 GiB, 64-pass hash costs nothing to
// refuse, at CheckPassword and at sign-in, where it answers as a wrong
// password.
func TestHugeHashRefusedBeforeHashing(t *testing.T) {
	huge := phc(4<<20, 64, 1, 16, 32)
	start := time.Now()
	n := allocated(func() {
		if ok, err := identity.CheckPassword("correct horse", huge); ok || !errors.Is(err, identity.ErrHashOutOfBounds) {
			t.Errorf("CheckPassword = %v, %v; want ErrHashOutOfBounds", ok, err)
		}
	})
	if d := time.Since(start); d > 200*time.Millisecond || n > 1<<20 {
		t.Fatalf("refusing the hash took %v and allocated %d bytes", d, n)
	}

	s := newService(t)
	ctx := context.Background()
	a, err := s.Create(ctx, identity.CreateParams{Handle: "imported", Password: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Store.UpdateAccount(ctx, a.DID, func(x *identity.Account) error { x.PasswordHash = huge; return nil }); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	n = allocated(func() {
		if _, err := s.Authenticate(ctx, "imported", "correct horse"); !errors.Is(err, identity.ErrBadCredentials) {
			t.Errorf("Authenticate with a 4 GiB hash: %v, want ErrBadCredentials", err)
		}
	})
	// No argon2id run at all: well under the 19 MiB of one ordinary check.
	if d := time.Since(start); d > 500*time.Millisecond || n > 8<<20 {
		t.Fatalf("sign-in with a 4 GiB hash took %v and allocated %d bytes", d, n)
	}
}

// TestRehashAtSignIn: a hash made with weaker parameters is replaced with
// one of the service's parameters at the next successful sign-in, and the new
// hash verifies; a wrong password changes nothing, nor does a current hash.
func TestRehashAtSignIn(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	a, err := s.Create(ctx, identity.CreateParams{Handle: "weak", Password: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	weak, err := identity.HashPassword("correct horse", identity.Argon2Params{Memory: 8 * 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Store.UpdateAccount(ctx, a.DID, func(x *identity.Account) error { x.PasswordHash = weak; return nil }); err != nil {
		t.Fatal(err)
	}
	stored := func() string {
		t.Helper()
		got, err := s.Store.GetAccount(ctx, a.DID)
		if err != nil {
			t.Fatal(err)
		}
		return got.PasswordHash
	}
	if !identity.NeedsRehash(weak, s.Argon2) {
		t.Fatal("NeedsRehash(weaker hash) = false")
	}
	if _, err := s.Authenticate(ctx, "weak", "wrong horse"); !errors.Is(err, identity.ErrBadCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if stored() != weak {
		t.Fatal("a failed sign-in rewrote the hash")
	}
	if _, err := s.Authenticate(ctx, "weak", "correct horse"); err != nil {
		t.Fatal(err)
	}
	fresh := stored()
	if fresh == weak || !strings.HasPrefix(fresh, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash after sign-in = %q, want one with the current parameters", fresh)
	}
	if ok, err := identity.CheckPassword("correct horse", fresh); !ok || err != nil {
		t.Fatalf("the new hash does not verify: %v %v", ok, err)
	}
	if _, err := s.Authenticate(ctx, "weak", "correct horse"); err != nil {
		t.Fatal(err)
	}
	if stored() != fresh {
		t.Fatal("a current hash was rewritten")
	}
}

// failingStore answers every read with a storage error.
type failingStore struct{ identity.Store }

var errDown = errors.New("database is locked")

func (failingStore) GetAccountByHandle(context.Context, string) (*identity.Account, error) {
	return nil, fmt.Errorf("account alice: %w", errDown)
}

// TestAuthenticateStoreDown: a store failure is no verdict on the password:
// it is ErrUnavailable, never ErrBadCredentials, and names its cause.
func TestAuthenticateStoreDown(t *testing.T) {
	s := newService(t)
	s.Store = failingStore{s.Store}
	_, err := s.Authenticate(context.Background(), "alice", "correct horse")
	if !errors.Is(err, identity.ErrUnavailable) || errors.Is(err, identity.ErrBadCredentials) || !errors.Is(err, errDown) {
		t.Fatalf("Authenticate with the store down: %v, want ErrUnavailable wrapping the cause", err)
	}
	if got := identity.RootCause(err); got != errDown {
		t.Fatalf("RootCause = %v, want the store's own error (without the handle)", got)
	}
}
