package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/store/sqlstore"
)

// TestDIDHome: three did:webvh clouds on loopback (A and C on SQLite, B on
// PostgreSQL), peers of each other. An account signed up on A gets the
// three clouds as witnesses in its log within seconds, and the witnessed
// log reaches B and C in did.log events. A stale log, then a newer one
// whose new entry is not witnessed, replayed by C, change nothing on B.
// A move to C, signed by the person's recovery key and witnessed by B and
// C while A is down, makes B's replica follow the log to C; A's stale
// account.updated after it does not flip it back. When A learns the log,
// the account there becomes a moved account pointing to C, its session
// ends, and A still serves the log with the move entry.
func TestDIDHome(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("skipped with -short: runs three clouds")
	}
	ctx := context.Background()
	envs := []env{sqliteEnv(t), postgresEnv(t), sqliteEnv(t)}
	for _, e := range envs {
		e["COMMONSID_DID_WITNESS_INTERVAL"] = "1s"
	}
	a, _ := startWebVHCloud(t, envs[0])
	b, _ := startWebVHCloud(t, envs[1])
	c, _ := startWebVHCloud(t, envs[2])
	for _, x := range []*cloudProc{a, b, c} {
		for _, y := range []*cloudProc{a, b, c} {
			if x != y {
				x.env.must(t, "", "peer", "add", y.base)
			}
		}
	}
	members := identity.WitnessConfig([]string{discoveredWitness(t, a.base).ID, discoveredWitness(t, b.base).ID, discoveredWitness(t, c.base).ID})
	if members.Threshold != 2 || len(members.Witnesses) != 3 {
		t.Fatalf("witness configuration of three members: %+v", members)
	}
	clA, clB, clC := openTestCloud(t, a.live()), openTestCloud(t, b.live()), openTestCloud(t, c.live())

	// Sign-up on A, with a recovery kit (the person's key) and sharing all.
	br := newBrowser(t)
	p := br.post(a.base+"/signup", url.Values{"handle": {"alice"}, "password": {"correct horse battery"},
		"return_to": {"/account"}, "federation_sharing": {"all"}})
	phrase, alice := recoveryKitPage(t, p)
	if p := passRecoveryKit(br, a.base, p); p.url.Path != "/account" {
		t.Fatalf("sign-up: %d %s", p.status, p.url)
	}
	person, err := identity.RecoveryKeyFromPhrase(phrase)
	if err != nil {
		t.Fatal(err)
	}

	// The witnesses are added and sign; the log reaches B and C.
	var rowA *identity.DIDLog
	eventually(t, 30*time.Second, "alice's log witnessed by A, B and C on every cloud", func() bool {
		ok := true
		for _, cl := range []*cloud{clA, clB, clC} {
			l, _, good := witnessedRow(ctx, cl.db, alice, members)
			ok = ok && good
			if cl == clA {
				rowA = l
			}
		}
		return ok
	})
	rowB, _ := clB.db.GetDIDLog(ctx, alice)
	rowC, _ := clC.db.GetDIDLog(ctx, alice)
	if rowB.Version != rowA.Version || rowC.Version != rowA.Version || rowB.HomeIssuer != a.base || rowB.DID != alice || rowA.Version < 2 {
		t.Fatalf("versions A %d, B %d, C %d; home on B %s", rowA.Version, rowB.Version, rowC.Version, rowB.HomeIssuer)
	}
	if acct, err := clB.db.GetAccount(ctx, alice); err != nil || acct.HomeIssuer != a.base {
		t.Fatalf("alice's replica on B: %+v %v", acct, err)
	}
	witnessedVersion := rowB.Version

	// C replays the genesis alone: stale, ignored by B (not quarantined).
	genesis := rowC.Log[:bytes.IndexByte(rowC.Log, '\n')+1]
	stale := *rowC
	stale.Log, stale.Version, stale.Witness = genesis, 1, nil
	seq := replayDIDLog(t, clC, &stale, rowC.Version)
	waitApplied(t, clB, c.base, seq)
	assertRow(t, clB, alice, witnessedVersion, rowB.Log)
	assertNotQuarantined(t, clB, c.base, seq)

	// C sends a newer log whose new entry lacks its witness proofs: B does
	// not store it.
	lg, err := webvh.Open(rowB.Log, webvh.Options{})
	if err != nil {
		t.Fatal(err)
	}
	acctA, err := clA.db.GetAccount(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	custodial, err := clA.accounts.SigningKey(ctx, acctA)
	if err != nil {
		t.Fatal(err)
	}
	ttl := int64(120)
	unwitnessed, err := lg.Update(webvh.UpdateOptions{TTL: &ttl, Time: nextTime(lg), Signer: custodial.Private})
	if err != nil {
		t.Fatal(err)
	}
	ahead := *rowC
	ahead.Log, ahead.Version, ahead.Witness = unwitnessed.Bytes(), unwitnessed.Result().Metadata.VersionNumber, rowB.Witness
	seq = replayDIDLog(t, clC, &ahead, 1)
	waitApplied(t, clB, c.base, seq)
	assertRow(t, clB, alice, witnessedVersion, rowB.Log)
	assertNotQuarantined(t, clB, c.base, seq)

	// A goes dark (and stops following C); the person moves to C, the move
	// witnessed by B and C.
	a.env.must(t, "", "peer", "remove", c.base)
	a.stop()
	_, newKey, _ := ed25519.GenerateKey(rand.Reader)
	moved, err := identity.AppendMove(lg, c.base, newKey.Public().(ed25519.PublicKey), members, person, nextTime(lg))
	if err != nil {
		t.Fatal(err)
	}
	witness := witnessMove(t, clC, b.base, moved.Bytes(), rowB.Witness)
	if _, err := webvh.Verify(moved.Bytes(), webvh.Options{Witness: func() ([]byte, error) { return witness, nil }}); err != nil {
		t.Fatalf("the move's witness proofs: %v", err)
	}
	mres := moved.Result()
	if home, _, err := identity.IssuerOfWebVH(mres.DID); err != nil || home != c.base {
		t.Fatalf("the moved DID %s names home %q (%v), want %s", mres.DID, home, err, c.base)
	}
	move := *rowC
	move.CurrentDID, move.HomeIssuer, move.Log, move.Witness, move.Version = mres.DID, c.base, moved.Bytes(), witness, mres.Metadata.VersionNumber
	replayDIDLog(t, clC, &move, ahead.Version)
	eventually(t, 20*time.Second, "B's replica follows the log to C", func() bool {
		l, err := clB.db.GetDIDLog(ctx, alice)
		acct, aerr := clB.db.GetAccount(ctx, alice)
		return err == nil && aerr == nil && l.Version == move.Version && l.HomeIssuer == c.base && acct.HomeIssuer == c.base
	})

	// A, still believing itself home, announces a change: B keeps C.
	name := "Alice Stale"
	if err := clA.accounts.UpdateProfile(ctx, alice, &name, nil); err != nil {
		t.Fatal(err)
	}
	seqA, err := clA.db.LastEventSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a.start()
	waitApplied(t, clB, a.base, seqA)
	acct, err := clB.db.GetAccount(ctx, alice)
	if err != nil || acct.HomeIssuer != c.base || acct.Name == name {
		t.Fatalf("after A's stale account.updated, alice on B: %+v %v", acct, err)
	}
	assertNotQuarantined(t, clB, a.base, seqA)

	// A learns the log: alice is moved there, her session ends, the log
	// is still served at its old path.
	a.env.must(t, "", "peer", "add", c.base)
	eventually(t, 20*time.Second, "alice moved on A", func() bool {
		acct, err := clA.db.GetAccount(ctx, alice)
		return err == nil && acct.Status == identity.StatusMoved && acct.HomeIssuer == c.base
	})
	if p := br.get(a.base + "/account"); p.url.Path == "/account" && p.status == 200 {
		t.Fatalf("alice's session on A survived the move: %s", p.url)
	}
	parsed, _ := webvh.ParseDID(alice)
	resp, err := http.Get(a.base + "/accounts/" + parsed.Path[len(parsed.Path)-1] + "/did.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if res, err := webvh.Open(served, webvh.Options{}); resp.StatusCode != 200 || err != nil || res.Result().DID != mres.DID {
		t.Fatalf("A serves the log after the move: %d %v", resp.StatusCode, err)
	}
}

// witnessedRow reads an account's log on a cloud and reports whether it has
// the witness configuration want and meets its thresholds.
func witnessedRow(ctx context.Context, db *sqlstore.DB, account string, want *webvh.Witness) (*identity.DIDLog, *webvh.Result, bool) {
	l, err := db.GetDIDLog(ctx, account)
	if err != nil || len(l.Witness) == 0 {
		return l, nil, false
	}
	res, err := webvh.Verify(l.Log, webvh.Options{Witness: func() ([]byte, error) { return l.Witness, nil }})
	if err != nil {
		return l, nil, false
	}
	return l, res, res.Metadata.Witnessed && sameWitness(res.Metadata.Witness, want)
}

// replayDIDLog stores l on cl as if it were its log of the account and
// appends a did.log event, which cl's feed serves with l; it returns the
// event's sequence number.
func replayDIDLog(t *testing.T, cl *cloud, l *identity.DIDLog, prev int) int64 {
	t.Helper()
	ctx := context.Background()
	var seq int64
	err := cl.db.InTx(ctx, func(ctx context.Context) error {
		ok, err := cl.db.PutDIDLog(ctx, l, prev)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("the stored log is not at the version expected")
		}
		if err := cl.db.AppendEvent(ctx, "did.log", l.DID, time.Now().UTC(), map[string]any{"scid": l.SCID}); err != nil {
			return err
		}
		seq, err = cl.db.LastEventSeq(ctx)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// waitApplied waits until cl has applied peer's feed up to seq.
func waitApplied(t *testing.T, cl *cloud, peer string, seq int64) {
	t.Helper()
	eventually(t, 20*time.Second, "event "+peer+" applied", func() bool {
		p, err := cl.db.GetPeer(context.Background(), peer)
		return err == nil && p.Cursor >= seq
	})
}

func assertRow(t *testing.T, cl *cloud, account string, version int, log []byte) {
	t.Helper()
	l, err := cl.db.GetDIDLog(context.Background(), account)
	if err != nil {
		t.Fatal(err)
	}
	if l.Version != version || !bytes.Equal(l.Log, log) {
		t.Fatalf("the stored log changed: version %d (was %d), home %s", l.Version, version, l.HomeIssuer)
	}
}

func assertNotQuarantined(t *testing.T, cl *cloud, peer string, seq int64) {
	t.Helper()
	qs, err := cl.db.ListQuarantined(context.Background(), peer, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if q.Seq == seq {
			t.Fatalf("event %d of %s quarantined: %s", seq, peer, q.Reason)
		}
	}
}

// nextTime is a versionTime for the entry after the log's last.
func nextTime(l *webvh.Log) time.Time {
	at := time.Now().UTC().Truncate(time.Second)
	if last := l.Result().Metadata.VersionTime; !at.After(last) {
		at = last.Add(time.Second)
	}
	return at
}

// witnessMove has cl's witness and its peer's witness sign log, and returns
// the witness file: the proofs held before and theirs.
func witnessMove(t *testing.T, cl *cloud, peer string, log, held []byte) []byte {
	t.Helper()
	ctx := context.Background()
	fed := cl.federation()
	fed.HTTP = http.DefaultClient
	var records []webvh.WitnessProofs
	if err := json.Unmarshal(held, &records); err != nil {
		t.Fatal(err)
	}
	own, err := fed.Witness(ctx, peer, log)
	if err != nil {
		t.Fatalf("own witness: %v", err)
	}
	records = append(records, own.Proofs...)
	p, err := cl.db.GetPeer(ctx, peer)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := fed.RequestWitness(ctx, p, log)
	if err != nil {
		t.Fatalf("witness of %s: %v", peer, err)
	}
	records = append(records, theirs...)
	out, _ := json.Marshal(records)
	return out
}
