package keys

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestKEKSealOpen(t *testing.T) {
	k, _ := NewKEK(bytes.Repeat([]byte{7}, KEKSize))
	other, _ := NewKEK(bytes.Repeat([]byte{8}, KEKSize))
	sealed, err := k.Seal([]byte("secret"), []byte("owner-a"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("secret")) {
		t.Fatal("plaintext visible in sealed value")
	}
	if pt, err := k.Open(sealed, []byte("owner-a")); err != nil || string(pt) != "secret" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	again, _ := k.Seal([]byte("secret"), []byte("owner-a"))
	if bytes.Equal(again, sealed) {
		t.Fatal("two seals of one value are equal: nonce reused")
	}
	tampered := append([]byte{}, sealed...)
	tampered[len(tampered)-1] ^= 1
	for name, c := range map[string]struct {
		k   *KEK
		v   []byte
		aad string
	}{
		"other key":  {other, sealed, "owner-a"},
		"other aad":  {k, sealed, "owner-b"},
		"tampered":   {k, tampered, "owner-a"},
		"truncated":  {k, sealed[:10], "owner-a"},
		"empty":      {k, nil, "owner-a"},
		"bad prefix": {k, append([]byte{9}, sealed[1:]...), "owner-a"},
	} {
		if _, err := c.k.Open(c.v, []byte(c.aad)); !errors.Is(err, ErrWrongKEK) {
			t.Errorf("%s: err = %v, want ErrWrongKEK", name, err)
		}
	}
	check, _ := k.CheckValue()
	if k.Verify(check) != nil || other.Verify(check) == nil {
		t.Fatal("check value does not tell the keys apart")
	}
}

func TestKEKFile(t *testing.T) {
	dir := t.TempDir()
	k1, created, err := LoadOrCreateKEKFile(dir)
	if err != nil || !created {
		t.Fatalf("first load: created=%v err=%v", created, err)
	}
	fi, _ := os.Stat(filepath.Join(dir, KEKFile))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("kek file mode %v, want 0600", fi.Mode().Perm())
	}
	k2, created, err := LoadOrCreateKEKFile(dir)
	if err != nil || created {
		t.Fatalf("second load: created=%v err=%v", created, err)
	}
	s, _ := k1.Seal([]byte("x"), nil)
	if _, err := k2.Open(s, nil); err != nil {
		t.Fatal("reloaded key differs")
	}
	os.Chmod(filepath.Join(dir, KEKFile), 0o644)
	if _, _, err := LoadOrCreateKEKFile(dir); err == nil {
		t.Fatal("a world-readable kek file was accepted")
	}
	for _, bad := range []string{"", "!!!", "AAAA"} {
		if _, err := ParseKEK(bad); err == nil {
			t.Errorf("ParseKEK(%q) succeeded", bad)
		}
	}
}
