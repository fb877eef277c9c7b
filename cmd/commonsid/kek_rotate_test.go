package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/keys"
	"github.com/onecommons/commonsid/store/sqlstore"
)

func kekTestCloud(t *testing.T, e env) *cloud {
	t.Helper()
	cfg := &Config{DataDir: e["COMMONSID_DATA"], DB: e["COMMONSID_DB"], Issuer: defaultIssuer, LogFormat: "text", LogLevel: "error"}
	cl, err := openCloud(context.Background(), cfg, newLogger(cfg, io.Discard), true)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// sealedSnapshot reads every sealed value of the database, changing
// nothing.
func sealedSnapshot(t *testing.T, db *sqlstore.DB) map[string]sqlstore.SealedValue {
	t.Helper()
	out := map[string]sqlstore.SealedValue{}
	_, err := db.ResealAll(context.Background(), func(v sqlstore.SealedValue) ([]byte, error) {
		if v.Table == "meta" {
			if _, sealed := sealedMeta[v.Owner]; !sealed && v.Owner != kekCheckKey {
				return nil, nil
			}
		}
		out[v.String()] = v
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// setSealed replaces one stored sealed value.
func setSealed(ctx context.Context, db *sqlstore.DB, name string, value []byte) error {
	_, err := db.ResealAll(ctx, func(v sqlstore.SealedValue) ([]byte, error) {
		if v.String() == name {
			return value, nil
		}
		return nil, nil
	})
	return err
}

type kekState struct {
	witness  string
	hmac     []byte
	pairwise map[string][]byte
	dids     map[string]string
	totp     string
	sealed   map[string]sqlstore.SealedValue
	kekFile  []byte
}

// kekFixture makes a cloud with every kind of sealed value: accounts with
// custodial keys and pairwise secrets, two signing keys, an authenticator
// app secret, the OAuth HMAC secret and the witness seed.
func kekFixture(t *testing.T, e env) kekState {
	t.Helper()
	ctx := context.Background()
	st := kekState{pairwise: map[string][]byte{}, dids: map[string]string{}}
	for _, u := range []string{"alice", "bob"} {
		st.dids[u] = lastLine(e.must(t, "correct horse battery "+u+"\n", "user", "create", "--username", u, "--password-stdin"))
	}
	e.must(t, "", "keys", "rotate", "--alg", "EdDSA")
	cl := kekTestCloud(t, e)
	defer cl.Close()
	var err error
	if st.hmac, err = cl.globalSecret(ctx); err != nil {
		t.Fatal(err)
	}
	if st.witness, err = cl.federation().WitnessID(); err != nil {
		t.Fatal(err)
	}
	for u := range st.dids {
		a, err := cl.accounts.Lookup(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		if st.pairwise[u], err = cl.accounts.PairwiseSecret(a); err != nil {
			t.Fatal(err)
		}
	}
	alice, _ := cl.accounts.Lookup(ctx, "alice")
	enr, err := (&identity.MFA{Store: cl.db, Sealer: cl.kek, Issuer: defaultIssuer}).BeginTOTP(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	st.totp = enr.Secret
	st.sealed = sealedSnapshot(t, cl.db)
	for _, want := range []string{"accounts.did_key_sealed of " + st.dids["alice"], "accounts.pairwise_secret_sealed of " + st.dids["bob"],
		"mfa_totp.secret_sealed of " + st.dids["alice"], "meta.value of " + globalSecretKey, "meta.value of " + keys.WitnessSeedMeta, "meta.value of " + kekCheckKey} {
		if _, ok := st.sealed[want]; !ok {
			t.Fatalf("no sealed value %s among %d", want, len(st.sealed))
		}
	}
	if st.kekFile, err = os.ReadFile(filepath.Join(e["COMMONSID_DATA"], keys.KEKFile)); err != nil {
		t.Fatal(err)
	}
	return st
}

// checkRotated checks that the cloud works as before under its new key:
// the same witness id and secrets, accounts that sign in and sign, every
// sealed value re-sealed (opening with the new key, not the old one).
func checkRotated(t *testing.T, e env, before kekState) {
	t.Helper()
	ctx := context.Background()
	dir := e["COMMONSID_DATA"]
	now, err := os.ReadFile(filepath.Join(dir, keys.KEKFile))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(now, before.kekFile) {
		t.Fatal("kek file unchanged")
	}
	if fi, err := os.Stat(filepath.Join(dir, keys.KEKFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kek file mode: %v %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(dir, keys.KEKNewFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("kek.new left behind: %v", err)
	}
	olds, _ := filepath.Glob(filepath.Join(dir, keys.KEKOldPrefix+"*"))
	if len(olds) == 0 {
		t.Fatal("no kek.old.* kept")
	}
	kept, _ := os.ReadFile(olds[len(olds)-1])
	if !bytes.Equal(kept, before.kekFile) {
		t.Fatal("kek.old does not hold the previous key")
	}
	if fi, _ := os.Stat(olds[len(olds)-1]); fi.Mode().Perm() != 0o600 {
		t.Fatalf("kek.old mode %v", fi.Mode().Perm())
	}
	oldKEK, err := keys.ParseKEK(string(before.kekFile))
	if err != nil {
		t.Fatal(err)
	}

	cl := kekTestCloud(t, e)
	defer cl.Close()
	if w, err := cl.federation().WitnessID(); err != nil || w != before.witness {
		t.Fatalf("witness id after rotation = %q, %v; want %q", w, err, before.witness)
	}
	if h, err := cl.globalSecret(ctx); err != nil || !bytes.Equal(h, before.hmac) {
		t.Fatalf("OAuth HMAC secret changed: %v", err)
	}
	if fp, err := cl.db.GetMeta(ctx, kekFingerprintKey); err != nil || string(fp) != cl.kek.Fingerprint() || cl.kek.Fingerprint() == oldKEK.Fingerprint() {
		t.Fatalf("recorded fingerprint %q, %v; key %s, old %s", fp, err, cl.kek.Fingerprint(), oldKEK.Fingerprint())
	}
	for u, id := range before.dids {
		a, err := cl.accounts.Authenticate(ctx, u, "correct horse battery "+u)
		if err != nil {
			t.Fatalf("%s signs in: %v", u, err)
		}
		k, err := cl.accounts.SigningKey(ctx, a)
		if err != nil || k.DID != id {
			t.Fatalf("custodial key of %s: %v", u, err)
		}
		if _, err := did.Sign(k.Private, k.KeyID, []byte("still me"), nil); err != nil {
			t.Fatal(err)
		}
		if p, err := cl.accounts.PairwiseSecret(a); err != nil || !bytes.Equal(p, before.pairwise[u]) {
			t.Fatalf("pairwise secret of %s changed: %v", u, err)
		}
	}
	for _, alg := range []string{keys.DefaultAlg, "EdDSA"} {
		s, err := cl.keys.Active(ctx, alg)
		if err != nil {
			t.Fatalf("signing key %s: %v", alg, err)
		}
		digest := sha256.Sum256([]byte("x"))
		var opts crypto.SignerOpts = crypto.SHA256
		msg := digest[:]
		if alg == "EdDSA" {
			opts, msg = crypto.Hash(0), []byte("x")
		}
		if _, err := s.Key.Sign(rand.Reader, msg, opts); err != nil {
			t.Fatal(err)
		}
	}
	alice, _ := cl.accounts.Lookup(ctx, "alice")
	enr, err := (&identity.MFA{Store: cl.db, Sealer: cl.kek, Issuer: defaultIssuer}).PendingTOTP(ctx, alice)
	if err != nil || enr.Secret != before.totp {
		t.Fatalf("authenticator secret after rotation: %v", err)
	}
	after := sealedSnapshot(t, cl.db)
	if len(after) != len(before.sealed) {
		t.Fatalf("%d sealed values after, %d before", len(after), len(before.sealed))
	}
	for name, v := range after {
		if bytes.Equal(v.Sealed, before.sealed[name].Sealed) {
			t.Errorf("%s not re-sealed", name)
		}
		if v.Owner == kekCheckKey {
			if cl.kek.Verify(v.Sealed) != nil || oldKEK.Verify(v.Sealed) == nil {
				t.Errorf("check value not under the new key only")
			}
			continue
		}
		aad, _, err := sealedAAD(v)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.kek.Open(v.Sealed, aad); err != nil {
			t.Errorf("%s does not open with the new key: %v", name, err)
		}
		if _, err := oldKEK.Open(v.Sealed, aad); err == nil {
			t.Errorf("%s still opens with the old key", name)
		}
	}
}

func kekEnvs() map[string]func(testing.TB) env {
	return map[string]func(testing.TB) env{"sqlite": sqliteEnv, "postgres": postgresEnv}
}

// TestRotateKEK: rotate-kek re-seals every value; the cloud keeps its
// witness id, secrets and accounts; the old key is refused afterwards.
func TestRotateKEK(t *testing.T) {
	t.Parallel()
	for name, mk := range kekEnvs() {
		t.Run(name, func(t *testing.T) {
			e := mk(t)
			before := kekFixture(t, e)
			out := e.must(t, "", "keys", "rotate-kek")
			if !strings.Contains(out, "kek.old.") || !strings.Contains(out, "re-sealed") {
				t.Fatalf("output: %s", out)
			}
			checkRotated(t, e, before)

			// The old key is refused by serve (and every command).
			kekPath := filepath.Join(e["COMMONSID_DATA"], keys.KEKFile)
			newKey, _ := os.ReadFile(kekPath)
			if err := os.WriteFile(kekPath, before.kekFile, 0o600); err != nil {
				t.Fatal(err)
			}
			r := e.run(t, "", "serve", "--addr", "127.0.0.1:0")
			if r.code == 0 || !strings.Contains(r.stderr, "does not match this database") {
				t.Fatalf("serve with the old key: exit %d, %s", r.code, r.stderr)
			}
			os.WriteFile(kekPath, newKey, 0o600)

			// A second rotation works from the first one's result.
			before2 := before
			before2.kekFile = newKey
			cl := kekTestCloud(t, e)
			before2.sealed = sealedSnapshot(t, cl.db)
			cl.Close()
			e.must(t, "", "keys", "rotate-kek")
			checkRotated(t, e, before2)
		})
	}
}

// TestRotateKEKCrash runs the two halves of a rotation separately: the
// database commits, then the process stops before the kek file is
// replaced. The next start finishes the rotation from kek.new.
func TestRotateKEKCrash(t *testing.T) {
	for name, mk := range kekEnvs() {
		t.Run(name, func(t *testing.T) {
			e := mk(t)
			before := kekFixture(t, e)
			dir := e["COMMONSID_DATA"]
			rotateKEKHook = func() error { return errors.New("simulated crash after the commit") }
			r := e.run(t, "", "keys", "rotate-kek")
			rotateKEKHook = nil
			if r.code == 0 {
				t.Fatal("rotate-kek did not stop at the hook")
			}
			cur, _ := os.ReadFile(filepath.Join(dir, keys.KEKFile))
			if !bytes.Equal(cur, before.kekFile) {
				t.Fatal("kek replaced before the crash point")
			}
			next, err := keys.ReadKEKNewFile(dir)
			if err != nil {
				t.Fatalf("kek.new after the commit: %v", err)
			}
			// The database is sealed under kek.new now; any start adopts it.
			e.must(t, "", "user", "show", "alice")
			adopted, _ := os.ReadFile(filepath.Join(dir, keys.KEKFile))
			k, err := keys.ParseKEK(string(adopted))
			if err != nil || !k.Equal(next) {
				t.Fatal("kek.new not installed at start-up")
			}
			checkRotated(t, e, before)
		})
	}
}

// TestRotateKEKNothingChanges: a value that does not open stops the
// rotation before anything changes; a stale kek.new from a rotation that
// never committed is not needed and is replaced.
func TestRotateKEKNothingChanges(t *testing.T) {
	t.Parallel()
	for name, mk := range kekEnvs() {
		t.Run(name, func(t *testing.T) {
			e := mk(t)
			before := kekFixture(t, e)
			dir := e["COMMONSID_DATA"]
			ctx := context.Background()
			cl := kekTestCloud(t, e)
			good := before.sealed["accounts.pairwise_secret_sealed of "+before.dids["bob"]].Sealed
			bad := append([]byte(nil), good...)
			bad[len(bad)-1] ^= 1
			if err := setSealed(ctx, cl.db, "accounts.pairwise_secret_sealed of "+before.dids["bob"], bad); err != nil {
				t.Fatal(err)
			}
			cl.Close()
			r := e.run(t, "", "keys", "rotate-kek")
			if r.code == 0 || !strings.Contains(r.stderr, "pairwise_secret_sealed of "+before.dids["bob"]) || !strings.Contains(r.stderr, "nothing was changed") {
				t.Fatalf("rotate-kek over a corrupted value: exit %d, %s", r.code, r.stderr)
			}
			if cur, _ := os.ReadFile(filepath.Join(dir, keys.KEKFile)); !bytes.Equal(cur, before.kekFile) {
				t.Fatal("kek changed by a failed rotation")
			}
			if _, err := os.Stat(filepath.Join(dir, keys.KEKNewFile)); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("kek.new left by a failed rotation")
			}
			cl = kekTestCloud(t, e)
			after := sealedSnapshot(t, cl.db)
			for n, v := range before.sealed {
				if n == "accounts.pairwise_secret_sealed of "+before.dids["bob"] {
					continue
				}
				if !bytes.Equal(after[n].Sealed, v.Sealed) {
					t.Errorf("%s changed by a failed rotation", n)
				}
			}
			if err := setSealed(ctx, cl.db, "accounts.pairwise_secret_sealed of "+before.dids["bob"], good); err != nil {
				t.Fatal(err)
			}
			cl.Close()

			stale, _ := keys.GenerateKEKString()
			if err := keys.WriteKEKNewFile(dir, stale); err != nil {
				t.Fatal(err)
			}
			e.must(t, "", "user", "show", "alice") // the database is under kek: kek.new is ignored
			e.must(t, "", "keys", "rotate-kek")
			k, _ := keys.ParseKEK(stale)
			cur, _ := os.ReadFile(filepath.Join(dir, keys.KEKFile))
			if k2, _ := keys.ParseKEK(string(cur)); k2 == nil || k2.Equal(k) {
				t.Fatal("the stale kek.new was installed")
			}
			checkRotated(t, e, before)
		})
	}
}

// TestRotateKEKRefused: not while another process has the cloud open, and
// not with the key in COMMONSID_SECRET.
func TestRotateKEKRefused(t *testing.T) {
	t.Parallel()
	for name, mk := range kekEnvs() {
		t.Run(name, func(t *testing.T) {
			e := mk(t)
			e.must(t, "pw-of-alice-1234\n", "user", "create", "--username", "alice", "--password-stdin")
			kekBefore, _ := os.ReadFile(filepath.Join(e["COMMONSID_DATA"], keys.KEKFile))
			cl := kekTestCloud(t, e) // as a running serve holds it
			r := e.run(t, "", "keys", "rotate-kek")
			if r.code == 0 || !strings.Contains(r.stderr, "in use") {
				t.Fatalf("rotate-kek while the cloud is open: exit %d, %s", r.code, r.stderr)
			}
			cl.Close()
			if cur, _ := os.ReadFile(filepath.Join(e["COMMONSID_DATA"], keys.KEKFile)); !bytes.Equal(cur, kekBefore) {
				t.Fatal("kek changed by a refused rotation")
			}

			s := env{}
			for k, v := range e {
				s[k] = v
			}
			s["COMMONSID_SECRET"] = strings.TrimSpace(string(kekBefore))
			r = s.run(t, "", "keys", "rotate-kek")
			if r.code == 0 || !strings.Contains(r.stderr, "COMMONSID_SECRET") {
				t.Fatalf("rotate-kek with COMMONSID_SECRET: exit %d, %s", r.code, r.stderr)
			}
			e.must(t, "", "keys", "rotate-kek")

			// A meta value sealed with the key that the rotation does not
			// know the associated data of stops it: it would be lost.
			cl = kekTestCloud(t, e)
			sealed, _ := cl.kek.Seal([]byte("x"), []byte("commonsid/unknown"))
			if err := cl.db.PutMeta(context.Background(), "unknown_secret", sealed); err != nil {
				t.Fatal(err)
			}
			cl.Close()
			r = e.run(t, "", "keys", "rotate-kek")
			if r.code == 0 || !strings.Contains(r.stderr, "meta.value of unknown_secret") || !strings.Contains(r.stderr, "no associated data") {
				t.Fatalf("rotate-kek over an unknown sealed meta value: exit %d, %s", r.code, r.stderr)
			}
		})
	}
}
