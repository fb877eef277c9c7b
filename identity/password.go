package identity

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are argon2id cost parameters.
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
	SaltLen int
	KeyLen  uint32
}

// DefaultArgon2 follows the OWASP Password Storage Cheat Sheet's first
// argon2id configuration: m=19 MiB, t=2, p=1.
var DefaultArgon2 = Argon2Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// The argon2id parameters a stored or imported password hash may carry.
// Checking a password costs what its hash says, so a hash is the input that
// decides how much memory and time a sign-in takes: the bounds keep one
// attempt within a few times the cost of DefaultArgon2 (about 35 ms and
// 19 MiB) and refuse hashes too weak to protect a password. They bracket
// every argon2id configuration of the OWASP Password Storage Cheat Sheet
// (m=47104 t=1 … m=7168 t=5, p=1) and the reference implementation's
// defaults of other services (m=65536 t=3 p=4). A hash outside them is
// refused at import and never checked at sign-in.
const (
	Argon2MinMemory  = 7 * 1024   // KiB (7 MiB)
	Argon2MaxMemory  = 64 * 1024  // KiB (64 MiB)
	Argon2MinTime    = 1          // passes
	Argon2MaxTime    = 10         // passes
	Argon2MaxWork    = 192 * 1024 // memory × passes, KiB·passes (e.g. 64 MiB × 3, 19 MiB × 10)
	Argon2MinThreads = 1
	Argon2MaxThreads = 4
	Argon2MinSaltLen = 8 // bytes
	Argon2MaxSaltLen = 64
	Argon2MinKeyLen  = 16 // bytes
	Argon2MaxKeyLen  = 64
)

// Argon2Bounds describes the accepted range for people and operators.
var Argon2Bounds = fmt.Sprintf("memory %d–%d MiB, passes %d–%d, memory × passes at most %d MiB, parallelism %d–%d, salt %d–%d bytes, key %d–%d bytes",
	Argon2MinMemory/1024, Argon2MaxMemory/1024, Argon2MinTime, Argon2MaxTime, Argon2MaxWork/1024,
	Argon2MinThreads, Argon2MaxThreads, Argon2MinSaltLen, Argon2MaxSaltLen, Argon2MinKeyLen, Argon2MaxKeyLen)

// maxPHCLen bounds the whole string before anything is decoded: the longest
// hash within the bounds is about 210 characters.
const maxPHCLen = 256

var (
	// ErrMalformedHash reports a password hash that is not a PHC argon2id
	// string of version 19.
	ErrMalformedHash = errors.New("malformed argon2id hash")
	// ErrHashOutOfBounds reports a well-formed argon2id hash whose
	// parameters are outside the accepted range (Argon2Bounds).
	ErrHashOutOfBounds = errors.New("argon2id parameters outside the accepted range")
)

var b64 = base64.RawStdEncoding.Strict()

// PasswordHash is a parsed PHC argon2id string.
type PasswordHash struct {
	Params Argon2Params
	Salt   []byte
	Key    []byte
}

// ParsePasswordHash parses a PHC argon2id string strictly,
// $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<key> with unpadded
// standard base64, and checks its parameters against the bounds. A hash that
// is not of that form returns ErrMalformedHash; one outside the bounds
// returns ErrHashOutOfBounds, decided before anything is allocated for it.
func ParsePasswordHash(phc string) (*PasswordHash, error) {
	if len(phc) > maxPHCLen {
		return nil, fmt.Errorf("%w: longer than %d characters", ErrMalformedHash, maxPHCLen)
	}
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return nil, fmt.Errorf("%w: not $argon2id$v=…$m=…,t=…,p=…$salt$key", ErrMalformedHash)
	}
	if parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return nil, fmt.Errorf("%w: version is not v=%d", ErrMalformedHash, argon2.Version)
	}
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return nil, fmt.Errorf("%w: parameters are not m=…,t=…,p=…", ErrMalformedHash)
	}
	var vals [3]uint64
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(fields[i], name+"=")
		if !ok {
			return nil, fmt.Errorf("%w: parameters are not m=…,t=…,p=…", ErrMalformedHash)
		}
		n, ok := parseDecimal(v)
		if !ok {
			return nil, fmt.Errorf("%w: %s is not a decimal number", ErrMalformedHash, name)
		}
		vals[i] = n
	}
	m, t, p := vals[0], vals[1], vals[2]
	saltLen, keyLen, ok := decodedLen(parts[4]), decodedLen(parts[5]), true
	ok = ok && m >= Argon2MinMemory && m <= Argon2MaxMemory
	ok = ok && t >= Argon2MinTime && t <= Argon2MaxTime && m*t <= Argon2MaxWork
	ok = ok && p >= Argon2MinThreads && p <= Argon2MaxThreads
	ok = ok && saltLen >= Argon2MinSaltLen && saltLen <= Argon2MaxSaltLen
	ok = ok && keyLen >= Argon2MinKeyLen && keyLen <= Argon2MaxKeyLen
	if !ok {
		return nil, fmt.Errorf("%w: m=%d,t=%d,p=%d, salt %d bytes, key %d bytes (accepted: %s)",
			ErrHashOutOfBounds, m, t, p, saltLen, keyLen, Argon2Bounds)
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return nil, fmt.Errorf("%w: salt is not unpadded base64", ErrMalformedHash)
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil {
		return nil, fmt.Errorf("%w: key is not unpadded base64", ErrMalformedHash)
	}
	return &PasswordHash{
		Params: Argon2Params{Memory: uint32(m), Time: uint32(t), Threads: uint8(p), SaltLen: len(salt), KeyLen: uint32(len(key))},
		Salt:   salt, Key: key,
	}, nil
}

// parseDecimal accepts 1 to 10 ASCII digits without a leading zero.
func parseDecimal(s string) (uint64, bool) {
	if s == "" || len(s) > 10 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// decodedLen is the length of unpadded base64 s once decoded (-1 when no
// such string has that length).
func decodedLen(s string) int {
	if len(s)%4 == 1 {
		return -1
	}
	return len(s) * 3 / 4
}

// CheckPasswordHash reports whether phc is a password hash this cloud
// accepts (for an import): ErrMalformedHash or ErrHashOutOfBounds otherwise.
func CheckPasswordHash(phc string) error {
	_, err := ParsePasswordHash(phc)
	return err
}

// HashPassword returns an argon2id hash in PHC string form:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>.
func HashPassword(password string, p Argon2Params) (string, error) {
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// CheckPassword reports whether password matches a PHC argon2id hash, in time
// independent of where the two differ. A hash that does not parse or is out
// of bounds is an error, returned without hashing anything.
func CheckPassword(password, phc string) (bool, error) {
	h, err := ParsePasswordHash(phc)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), h.Salt, h.Params.Time, h.Params.Memory, h.Params.Threads, h.Params.KeyLen)
	return subtle.ConstantTimeCompare(got, h.Key) == 1, nil
}

// NeedsRehash reports whether a hash that verified was made with other
// parameters than p (weaker, or costlier than this cloud now spends): it is
// then replaced at the next successful sign-in, so every stored hash
// converges on the current parameters.
func NeedsRehash(phc string, p Argon2Params) bool {
	h, err := ParsePasswordHash(phc)
	if err != nil {
		return false
	}
	return h.Params.Memory != p.Memory || h.Params.Time != p.Time || h.Params.Threads != p.Threads ||
		h.Params.SaltLen < p.SaltLen || h.Params.KeyLen != p.KeyLen
}

// dummyHash is checked against when an account does not exist, so that a
// failed login takes as long whether or not the handle is known.
var dummyHash, _ = HashPassword("commonsid-no-such-account", DefaultArgon2)
