package identity_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/testdb"
	"github.com/onecommons/commonsid/keys"
)

func TestNormalizeHandle(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"alice", "alice", true},
		{"Alice", "alice", true},
		{" bob.smith_2-x ", "bob.smith_2-x", true},
		{"abc", "abc", true},
		{strings.Repeat("a", 32), strings.Repeat("a", 32), true},
		{"ab", "", false},
		{strings.Repeat("a", 33), "", false},
		{"al ice", "", false},
		{"alice!", "", false},
		{"ålice", "", false},
		{"", "", false},
	} {
		got, err := identity.NormalizeHandle(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("NormalizeHandle(%q) = %q, %v; want %q ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestPasswordHash(t *testing.T) {
	h, err := identity.HashPassword("correct horse", identity.DefaultArgon2)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q is not a PHC argon2id string with OWASP parameters", h)
	}
	if ok, err := identity.CheckPassword("correct horse", h); !ok || err != nil {
		t.Fatalf("right password: %v %v", ok, err)
	}
	if ok, _ := identity.CheckPassword("correct horsE", h); ok {
		t.Fatal("wrong password accepted")
	}
	h2, _ := identity.HashPassword("correct horse", identity.DefaultArgon2)
	if h2 == h {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA", "$argon2id$v=19$m=x$a$b", "plain"} {
		if ok, err := identity.CheckPassword("x", bad); ok || err == nil {
			t.Errorf("CheckPassword with hash %q = %v, %v", bad, ok, err)
		}
	}
}

func newService(t testing.TB) *identity.Service {
	t.Helper()
	db, _ := testdb.SQLite(t)
	kek, _ := keys.NewKEK(make([]byte, 32))
	return identity.NewService(db, kek, "https://cloud.example")
}

func TestCreateAndAuthenticate(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	err := (&identity.CreateParams{Handle: "x", Email: "bad", Password: "short"}).Validate()
	for _, want := range []string{"handle", "email", "password"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Validate reports every problem at once; %v lacks %s", err, want)
		}
	}
	a, err := s.Create(ctx, identity.CreateParams{Handle: "Alice", Email: "alice@example.org", Password: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Handle != "alice" || string(a.DIDKeySealed) == "" {
		t.Fatalf("account %+v", a)
	}
	if got, err := s.Authenticate(ctx, "ALICE", "correct horse"); err != nil || got.DID != a.DID {
		t.Fatalf("Authenticate = %v, %v", got, err)
	}
	for _, c := range [][2]string{{"alice", "wrong password"}, {"nobody", "correct horse"}} {
		if _, err := s.Authenticate(ctx, c[0], c[1]); !errors.Is(err, identity.ErrBadCredentials) {
			t.Errorf("Authenticate(%s) err = %v, want ErrBadCredentials", c[0], err)
		}
	}
	// The sealed key cannot be opened as another account's.
	b, err := s.Create(ctx, identity.CreateParams{Handle: "bob", Password: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	swapped := *b
	swapped.DIDKeySealed = a.DIDKeySealed
	if _, err := s.SigningKey(ctx, &swapped); err == nil {
		t.Fatal("a sealed key moved to another account opened")
	}
}

// BenchmarkCreateAccount measures account creation without the password
// hash: did:key, pairwise secret, sealing, and the insert.
func BenchmarkCreateAccount(b *testing.B) {
	s := newService(b)
	hash, _ := identity.HashPassword("correct horse", identity.DefaultArgon2)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if _, err := identity.CreateWithHash(ctx, s, identity.CreateParams{Handle: benchHandle(i), Password: "correct horse"}, hash); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func benchHandle(i int) string {
	const digits = "0123456789"
	h := []byte("bench")
	for n := i; ; n /= 10 {
		h = append(h, digits[n%10])
		if n < 10 {
			break
		}
	}
	return string(h)
}

func BenchmarkHashPassword(b *testing.B) {
	for b.Loop() {
		identity.HashPassword("correct horse", identity.DefaultArgon2)
	}
}

// BenchmarkAuthenticate compares a failed login on a known handle with one on
// an unknown handle: the times should match (the unknown one hashes against
// a dummy hash), so timing does not reveal which handles exist.
func BenchmarkAuthenticate(b *testing.B) {
	s := newService(b)
	ctx := context.Background()
	if _, err := s.Create(ctx, identity.CreateParams{Handle: "alice", Password: "correct horse"}); err != nil {
		b.Fatal(err)
	}
	for _, user := range []string{"alice", "nobody"} {
		b.Run(user, func(b *testing.B) {
			for b.Loop() {
				s.Authenticate(ctx, user, "wrong password")
			}
		})
	}
}
