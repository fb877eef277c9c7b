package identity_test

import (
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/onecommons/commonsid/identity"
)

// FuzzParsePasswordHash: whatever the string (a stored or imported hash),
// the parser does not panic, and what it accepts is within the bounds and
// is exactly the canonical form of what it parsed, so no second reading of
// the same hash can cost more.
func FuzzParsePasswordHash(f *testing.F) {
	for _, s := range []string{
		phc(19456, 2, 1, 16, 32),
		phc(65536, 3, 4, 12, 16),
		phc(4<<20, 64, 1, 16, 32),
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
		"$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := identity.ParsePasswordHash(s)
		if err != nil {
			return
		}
		p := h.Params
		if p.Memory < identity.Argon2MinMemory || p.Memory > identity.Argon2MaxMemory ||
			p.Time < identity.Argon2MinTime || p.Time > identity.Argon2MaxTime ||
			uint64(p.Memory)*uint64(p.Time) > identity.Argon2MaxWork ||
			p.Threads < identity.Argon2MinThreads || p.Threads > identity.Argon2MaxThreads ||
			len(h.Salt) < identity.Argon2MinSaltLen || len(h.Salt) > identity.Argon2MaxSaltLen ||
			len(h.Key) < identity.Argon2MinKeyLen || len(h.Key) > identity.Argon2MaxKeyLen {
			t.Fatalf("accepted out-of-bounds hash %q: %+v", s, p)
		}
		b := base64.RawStdEncoding
		if again := fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", p.Memory, p.Time, p.Threads,
			b.EncodeToString(h.Salt), b.EncodeToString(h.Key)); again != s {
			t.Fatalf("accepted %q, which is not the canonical %q", s, again)
		}
	})
}
