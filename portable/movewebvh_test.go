package portable_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/keys"
	"github.com/onecommons/commonsid/portable"
	"github.com/onecommons/commonsid/store"
	"github.com/onecommons/commonsid/store/sqlstore"
)

// webvhCloud is a cloud on SQLite whose new accounts get did:webvh DIDs.
func webvhCloud(t *testing.T, issuer string) (*portable.Service, *sqlstore.DB) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	kek, _ := keys.NewKEK(make([]byte, keys.KEKSize))
	km := &keys.Manager{Store: db, KEK: kek}
	if _, err := km.Ensure(ctx, keys.DefaultAlg); err != nil {
		t.Fatal(err)
	}
	acc := identity.NewService(db, kek, issuer)
	acc.Argon2 = identity.Argon2Params{Memory: identity.Argon2MinMemory, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	acc.DIDMethod, acc.DIDLogs = identity.DIDMethodWebVH, db
	// The exporting cloud's did:web is out of reach: the did:webvh export
	// stands on the account signature and its log.
	down := &did.Resolver{Transport: roundTrip(func(*http.Request) (*http.Response, error) { return nil, errors.New("unreachable") })}
	return &portable.Service{Store: db, Accounts: acc, Keys: km, Services: noServices{}, Resolver: down, Issuer: issuer, Now: time.Now}, db
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// witnesses signs, as two witnesses of the commons would, every entry of a
// log; fail makes them refuse.
type witnesses struct {
	keys []ed25519.PrivateKey
	fail error
	// offered records every log the witnesses were asked to sign.
	offered [][]byte
}

func newWitnesses(t *testing.T) *witnesses {
	w := &witnesses{}
	for range 2 {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		w.keys = append(w.keys, k)
	}
	return w
}

func (w *witnesses) ids(context.Context) ([]string, error) {
	var out []string
	for _, k := range w.keys {
		out = append(out, "did:key:"+webvh.Multikey(k.Public().(ed25519.PublicKey)))
	}
	return out, nil
}

func (w *witnesses) collect(_ context.Context, log, _ []byte) ([]byte, error) {
	w.offered = append(w.offered, append([]byte(nil), log...))
	if w.fail != nil {
		return nil, w.fail
	}
	l, err := webvh.Open(log, webvh.Options{})
	if err != nil {
		return nil, err
	}
	var recs []webvh.WitnessProofs
	last := l.Result().Metadata.VersionID
	rec := webvh.WitnessProofs{VersionID: last}
	for _, k := range w.keys {
		p, err := webvh.WitnessProof(k, last, time.Now())
		if err != nil {
			return nil, err
		}
		rec.Proof = append(rec.Proof, p)
	}
	return json.Marshal(append(recs, rec))
}

// TestImportWebVHRefusals: the import of a did:webvh export writes nothing
// when the file's log is not part of the account's latest log (a fork),
// or when the witnesses do not confirm the move; with both right, the
// account and its moved log are stored together.
func TestImportWebVHRefusals(t *testing.T) {
	ctx := context.Background()
	src, dbA := webvhCloud(t, "https://a.example")
	a, err := src.Accounts.Create(ctx, identity.CreateParams{Handle: "alice", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	key, err := src.Accounts.SigningKey(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	row, err := dbA.GetDIDLog(ctx, a.DID)
	if err != nil {
		t.Fatal(err)
	}
	genesis, err := webvh.Open(row.Log, webvh.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// A second entry X, exported; then A's log is replaced by a fork Y.
	entry := func(ttl int64) *webvh.Log {
		l, err := genesis.Update(webvh.UpdateOptions{TTL: &ttl, Time: genesis.Result().Metadata.VersionTime.Add(time.Second), Signer: key.Private})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	put := func(l *webvh.Log, prev int) {
		r := *row
		r.Log, r.Version = l.Bytes(), l.Result().Metadata.VersionNumber
		if ok, err := dbA.PutDIDLog(ctx, &r, prev); err != nil || !ok {
			t.Fatalf("put the log: %v %v", ok, err)
		}
	}
	x := entry(60)
	put(x, 1)
	file, err := src.Export(ctx, a.DID, "a long passphrase here", false)
	if err != nil {
		t.Fatal(err)
	}
	fork := entry(120)
	put(fork, 2)

	dst, dbB := webvhCloud(t, "https://b.example")
	w := newWitnesses(t)
	latest := func(ctx context.Context, scid string) ([]byte, []byte, error) {
		l, err := dbA.GetDIDLogBySCID(ctx, scid)
		if err != nil {
			return nil, nil, webvh.ErrNotFound
		}
		return l.Log, l.Witness, nil
	}
	dst.LatestLog, dst.MemberWitnesses, dst.CollectWitness = latest, w.ids, w.collect
	nothingWritten := func(what string) {
		t.Helper()
		if _, err := dbB.GetAccount(ctx, a.DID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: the account was written: %v", what, err)
		}
		if _, err := dbB.GetDIDLog(ctx, a.DID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: the log was written: %v", what, err)
		}
	}
	if _, err := dst.Import(ctx, file, "a long passphrase here", portable.ImportOptions{}); !errors.Is(err, portable.ErrNotInHistory) {
		t.Fatalf("import of a file off the account's history: %v", err)
	}
	nothingWritten("fork")

	// Back to the history the file belongs to; the witnesses refuse.
	r := *row
	r.Log, r.Version = x.Bytes(), 2
	if ok, err := dbA.PutDIDLog(ctx, &r, 2); err != nil || !ok {
		t.Fatalf("restore the log: %v %v", ok, err)
	}
	w.fail = errors.New("the witnesses are unreachable")
	if _, err := dst.Import(ctx, file, "a long passphrase here", portable.ImportOptions{}); !errors.Is(err, portable.ErrMoveNotWitnessed) {
		t.Fatalf("import the witnesses refuse: %v", err)
	}
	nothingWritten("witnesses refuse")
	w.fail = portable.ErrMoveLost
	if _, err := dst.Import(ctx, file, "a long passphrase here", portable.ImportOptions{}); !errors.Is(err, portable.ErrMoveLost) || errors.Is(err, portable.ErrMoveNotWitnessed) {
		t.Fatalf("import another move won: %v", err)
	}
	nothingWritten("another move won")

	w.fail = nil
	im, err := dst.Import(ctx, file, "a long passphrase here", portable.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Every attempt offered the very same move entry: witnesses that signed
	// an attempt short of its threshold see it again, not a fork.
	if n := len(w.offered); n != 3 || !bytes.Equal(w.offered[0], w.offered[1]) || !bytes.Equal(w.offered[1], w.offered[2]) {
		t.Fatalf("the %d attempts offered different move entries", n)
	}
	if im.Log == nil || im.Log.FromHome != "https://a.example" || im.Log.Version != 3 || len(im.Log.Witnesses) != 2 || im.Log.CloudUnverified == "" {
		t.Fatalf("import: %+v", im.Log)
	}
	got, err := dbB.GetDIDLog(ctx, a.DID)
	if err != nil || got.HomeIssuer != "https://b.example" || got.Version != 3 || got.CurrentDID != im.Log.DID {
		t.Fatalf("the log on B: %+v %v", got, err)
	}
	acct, err := dbB.GetAccount(ctx, a.DID)
	if err != nil || acct.HomeIssuer != "https://b.example" || acct.Status != identity.StatusActive {
		t.Fatalf("the account on B: %+v %v", acct, err)
	}
	// The custodial key sealed on B is the move entry's first update key.
	k, err := dst.Accounts.SigningKey(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	res, _ := webvh.Verify(got.Log, webvh.Options{Witness: func() ([]byte, error) { return got.Witness, nil }})
	if res == nil || res.Metadata.UpdateKeys[0] != webvh.Multikey(k.Private.Public().(ed25519.PublicKey)) {
		t.Fatal("the custodial key sealed on B is not the log's first update key")
	}
	// The same file on the cloud it left, which now learns the moved log:
	// superseded.
	src.LatestLog, src.MemberWitnesses, src.CollectWitness = func(ctx context.Context, scid string) ([]byte, []byte, error) {
		return got.Log, got.Witness, nil
	}, w.ids, w.collect
	if _, err := src.Import(ctx, file, "a long passphrase here", portable.ImportOptions{}); !errors.Is(err, portable.ErrExportSuperseded) {
		t.Fatalf("the old export on the cloud the account left: %v", err)
	}
}
