package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/store"
)

// TestHostilePeer runs a real cloud (SQLite, then PostgreSQL) peered with
// two programmable peers (hostilepeer_test.go): a, which attacks, and b,
// an honest peer whose account and keys a tries to abuse. Each attack of
// hostileAttacks is pushed on a's feed, followed by a genuine event of a
// fresh account. For every attack the cloud must:
//
//   - accept nothing: no replica appears or changes, no service appears
//     or takes a sector that is not its own;
//   - quarantine and log every refused event, with its reason, as `peer
//     rejected --json` and `peer list --json` (the real CLI) show it;
//   - fetch nothing from an internal address: the canary saw no
//     connection, also after the follower's and the operator's retries;
//   - go on: the genuine event after the bad ones is applied.
//
// A last part has a call the cloud's feed endpoints with forged, expired
// and misaddressed request tokens: 401 invalid_token and no event.
func TestHostilePeer(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func(testing.TB) env{"sqlite": sqliteEnv, "postgres": postgresEnv} {
		t.Run(name, func(t *testing.T) {
			s := newHostileScene(t, mk(t))
			for _, at := range hostileAttacks {
				if !t.Run(at.name, func(t *testing.T) { s.attack(t, at) }) {
					return // the scene's counts no longer hold
				}
			}
			t.Run("request tokens", s.requestTokens)
		})
	}
}

// hostileScene is a victim cloud with its two peers.
type hostileScene struct {
	victim *cloudProc
	cl     *cloud       // the victim's store, opened by the test
	a, b   *hostilePeer // a attacks; b is honest
	canary *internalCanary
	alice  *hostileAccount // homed on a
	bob    *hostileAccount // homed on b
	dave   *hostileAccount // homed on b
	carol  string          // DID of an account homed on the victim
	// What the attacks so far expect of a in the victim's records.
	quarantined, rejected int
	sentinels             int
}

// refusal is an event the cloud must quarantine.
type refusal struct {
	seq int64
	// reasons: the quarantine reason holds one of them.
	reasons []string
	// held: quarantined behind an earlier refused event of its account,
	// not refused itself.
	held bool
}

func mustRefuse(it federation.Item, reasons ...string) refusal {
	return refusal{seq: it.Seq, reasons: reasons}
}

// hostileAttack is one attack of peer a on the victim. run pushes its
// events and returns what must be quarantined and a check that nothing of
// it was accepted.
//
// To add an attack, add an entry to hostileAttacks (attacks share the
// scene: use fresh accounts, so that a refused event holds no other
// attack's account). The silent brokered sign-in is its own test,
// TestHostilePeerSilentSignIn.
type hostileAttack struct {
	name string
	run  func(t *testing.T, s *hostileScene) (want []refusal, check func(t *testing.T))
}

var hostileAttacks = []hostileAttack{
	// First: the follower fetches a peer's keys at most every 10 s, and
	// this one needs the fetch.
	{"rotated key without a vouching signature", attackUnvouchedKey},
	{"forged cloud signature", attackForged},
	{"keys not pinned", attackUnpinnedKeys},
	{"re-signed by another peer", attackResigned},
	{"replayed events", attackReplayed},
	{"out of order", attackOutOfOrder},
	{"sequence mismatch", attackSeqMismatch},
	{"wrong issuer", attackWrongIssuer},
	{"person signature", attackPersonSignature},
	{"takeover of accounts homed elsewhere", attackTakeover},
	{"did:web at an internal address", attackInternalDIDWeb},
	{"forged service sectors", attackForgedSectors},
	{"oversize event", attackOversize},
}

func newHostileScene(t *testing.T, e env) *hostileScene {
	ctx := context.Background()
	e["COMMONSID_LOG_FORMAT"] = "json"
	s := &hostileScene{victim: startCloud(t, e), a: newHostilePeer(t), b: newHostilePeer(t), canary: newInternalCanary(t)}
	for _, p := range []*hostilePeer{s.a, s.b} {
		if out := s.victim.env.must(t, "", "peer", "add", p.issuer); !strings.Contains(out, "peer "+p.issuer+" added") {
			t.Fatalf("peer add %s: %s", p.issuer, out)
		}
	}
	s.cl = openTestCloud(t, s.victim.live())
	s.carol = lastLine(s.victim.env.must(t, "a fine password\n", "user", "create", "--username", "carol", "--name", "Carol", "--password-stdin"))
	eventually(t, 10*time.Second, "the cloud follows both peers' live streams", func() bool {
		return s.a.streamsServed.Load() > 0 && s.b.streamsServed.Load() > 0
	})
	// Genuine events of both peers are applied: the peers speak the
	// protocol, so what the attacks see refused is refused for the attack.
	s.bob, s.dave, s.alice = s.b.newAccount("bob"), s.b.newAccount("dave"), s.a.newAccount("alice")
	s.b.push(s.b.accountUpdated(s.bob, "Bob"), s.b.accountUpdated(s.dave, "Dave"))
	s.a.push(s.a.accountUpdated(s.alice, "Alice"), s.a.serviceRegistered(map[string]any{"client_id": "a-notes", "client_name": "Notes",
		"redirect_uris": []string{"https://notes.hostile.example/cb"}, "x_sector": "notes.hostile.example"}))
	for did, name := range map[string]string{s.bob.did: "Bob", s.dave.did: "Dave", s.alice.did: "Alice"} {
		s.waitName(t, did, name)
	}
	eventually(t, 5*time.Second, "a's service recorded", func() bool {
		_, err := s.cl.db.RemoteService(ctx, s.a.issuer, "a-notes")
		return err == nil
	})
	return s
}

// waitName waits until the victim holds the replica did named name.
func (s *hostileScene) waitName(t *testing.T, did, name string) {
	t.Helper()
	eventually(t, 15*time.Second, "replica "+name, func() bool {
		acc, err := s.cl.db.GetAccount(context.Background(), did)
		return err == nil && acc.Name == name
	})
}

// noReplica fails unless the victim holds none of the accounts.
func (s *hostileScene) noReplica(t *testing.T, accts ...*hostileAccount) {
	t.Helper()
	for _, a := range accts {
		if acc, err := s.cl.db.GetAccount(context.Background(), a.did); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the cloud holds %s (%v): %+v", a.handle, err, acc)
		}
	}
}

// holds fails unless the victim holds did with that name and home.
func (s *hostileScene) holds(t *testing.T, did, name, home string) {
	t.Helper()
	acc, err := s.cl.db.GetAccount(context.Background(), did)
	if err != nil || acc.Name != name || acc.HomeIssuer != home || acc.Status != identity.StatusActive {
		t.Errorf("account %s: %+v %v, want name %q, home %s, active", did, acc, err, name, home)
	}
}

// noService fails if the victim recorded a's service id.
func (s *hostileScene) noService(t *testing.T, id string) {
	t.Helper()
	if _, err := s.cl.db.RemoteService(context.Background(), s.a.issuer, id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("service %s of a recorded (%v)", id, err)
	}
}

// sentinel pushes a genuine event of a fresh account and waits for it.
func (s *hostileScene) sentinel(t *testing.T) {
	t.Helper()
	s.sentinels++
	acc := s.a.newAccount(fmt.Sprintf("sentinel%d", s.sentinels))
	name := fmt.Sprintf("Sentinel %d", s.sentinels)
	s.a.push(s.a.accountUpdated(acc, name))
	s.waitName(t, acc.did, name)
}

// quarantinedOf returns a's quarantined events by sequence number.
func (s *hostileScene) quarantinedOf(t *testing.T) map[int64]*federation.Quarantined {
	t.Helper()
	qs, err := s.cl.db.ListQuarantined(context.Background(), s.a.issuer, 10000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]*federation.Quarantined{}
	for _, q := range qs {
		out[q.Seq] = q
	}
	return out
}

// logRecords returns the victim's JSON log records with message msg.
func (s *hostileScene) logRecords(msg string) []map[string]any {
	var out []map[string]any
	for line := range strings.Lines(s.victim.logs.String()) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// logged reports whether the victim logged msg about a's event seq.
func (s *hostileScene) logged(msg string, seq int64) bool {
	for _, rec := range s.logRecords(msg) {
		if rec["peer"] == s.a.issuer && rec["seq"] == float64(seq) {
			return true
		}
	}
	return false
}

func hostileReasonMatches(s string, subs []string) bool {
	return slices.ContainsFunc(subs, func(sub string) bool { return strings.Contains(s, sub) })
}

// attack runs one attack and checks what every attack must hold.
func (s *hostileScene) attack(t *testing.T, at hostileAttack) {
	want, check := at.run(t, s)
	// The feed goes on past the attack.
	s.sentinel(t)
	for _, w := range want {
		var q *federation.Quarantined
		eventually(t, 10*time.Second, fmt.Sprintf("event %d quarantined", w.seq), func() bool {
			q = s.quarantinedOf(t)[w.seq]
			return q != nil
		})
		if !hostileReasonMatches(q.Reason, w.reasons) || w.held != (q.HeldBy != 0) {
			t.Errorf("event %d quarantined with reason %q (held by %d), want one of %q (held: %v)", w.seq, q.Reason, q.HeldBy, w.reasons, w.held)
		}
		eventually(t, 5*time.Second, fmt.Sprintf("event %d logged", w.seq), func() bool {
			return s.logged("quarantined a peer event", w.seq) && (w.held || s.logged("rejected a peer event", w.seq))
		})
		s.quarantined++
		if !w.held {
			s.rejected++
		}
	}
	check(t)

	// The operator sees every refusal with its reason.
	var listed []quarantinedJSON
	if err := json.Unmarshal([]byte(s.victim.env.must(t, "", "peer", "rejected", s.a.issuer, "--json")), &listed); err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		i := slices.IndexFunc(listed, func(q quarantinedJSON) bool { return q.Seq == w.seq })
		if i < 0 || listed[i].Peer != s.a.issuer || !hostileReasonMatches(listed[i].Reason, w.reasons) {
			t.Errorf("peer rejected does not show event %d with one of %q: %+v", w.seq, w.reasons, listed)
		}
	}
	var peers []peerJSON
	if err := json.Unmarshal([]byte(s.victim.env.must(t, "", "peer", "list", "--json")), &peers); err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		switch p.Issuer {
		case s.a.issuer:
			if p.Quarantined != s.quarantined || p.Rejected < s.rejected {
				t.Errorf("peer list: a has %d quarantined and %d rejected events, want %d and at least %d", p.Quarantined, p.Rejected, s.quarantined, s.rejected)
			}
		case s.b.issuer:
			if p.Quarantined != 0 || p.Rejected != 0 {
				t.Errorf("peer list: the honest peer has %d quarantined and %d rejected events", p.Quarantined, p.Rejected)
			}
		default:
			t.Errorf("peer list names %s", p.Issuer)
		}
	}
	// What a attacked is as its home made it.
	s.holds(t, s.alice.did, "Alice", s.a.issuer)
	s.holds(t, s.bob.did, "Bob", s.b.issuer)
	s.holds(t, s.dave.did, "Dave", s.b.issuer)
	if acc, err := s.cl.db.GetAccount(context.Background(), s.carol); err != nil || acc.Name != "Carol" || acc.HomeIssuer != s.victim.base || acc.Status != identity.StatusActive {
		t.Errorf("carol, homed on the cloud: %+v %v", acc, err)
	}
	if n := s.canary.conns.Load(); n != 0 {
		t.Errorf("the internal canary got %d connections", n)
	}
}

// attackUnvouchedKey: a publishes a new key in its JWKS and its did:web
// document (which agree), with a key-set statement signed by the new key
// alone, and signs an event and a request token with it. No pinned key
// vouched for it: the event is quarantined, the token refused, the key
// not pinned but shown as pending in peer list.
func attackUnvouchedKey(t *testing.T, s *hostileScene) ([]refusal, func(*testing.T)) {
	r1 := s.a.newAccount("rotated1")
	key, kid := s.a.rotateKey(true)
	s.a.handle(federation.KeysPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jose+json")
		w.Write(s.a.keySet(map[string]*ecdsa.PrivateKey{kid: key}))
	})
	e1 := s.a.accountUpdated(r1, "Rotated", signedBy(key, kid))
	s.a.push(e1)
	return []refusal{mustRefuse(e1, kid)}, func(t *testing.T) {
		s.noReplica(t, r1)
		if p, err := s.cl.db.GetPeer(context.Background(), s.a.issuer); err != nil || len(p.JWKS.Key(kid)) > 0 {
			t.Errorf("a self-vouched key was pinned: %v", err)
		}
		var peers []peerJSON
		json.Unmarshal([]byte(s.victim.env.must(t, "", "peer", "list", "--json")), &peers)
		i := slices.IndexFunc(peers, func(p peerJSON) bool { return p.Issuer == s.a.issuer })
		if i < 0 || !slices.ContainsFunc(peers[i].PendingKeys, func(k pendingKeyJSON) bool {
			return k.KID == kid && strings.Contains(k.Reason, "not signed by a key pinned here")
		}) {
			t.Errorf("peer list does not show %s as a pending key refused for want of a pinned key's signature: %+v", kid, peers)
		}
		tok := hostileRequestToken(t, key, kid, s.a.requestClaims(s.victim.base))
		if st, _, body := hostileFeedGet(t, s.victim.base+"/federation/v1/events", tok); st != http.StatusUnauthorized {
			t.Errorf("a request token signed by the unvouched key: %d %s", st, body)
		}
	}
}

// attackForged: events whose cloud signature is by a key that is not a's
// (under a's kid), whose typ is not an event's, or that are no JWS.
func attackForged(t *testing.T, s *hostileScene) ([]refusal, func(*testing.T)) {
	f1, f2, f3 := s.a.newAccount("forged1"), s.a.newAccount("forged2"), s.a.newAccount("forged3")
	bad := s.a.accountUpdated(f1, "Forged", forgedSignature())
	svc := s.a.serviceRegistered(map[string]any{"client_id": "a-forged", "client_name": "Forged",
		"redirect_uris": []string{"https://forged.hostile.example/cb"}, "x_sector": "forged.hostile.example"}, forgedSignature())
	typ := s.a.accountUpdated(f2, "Typ", withTyp("JWT"))
	mal := s.a.accountUpdated(f3, "Malformed", malformedJWS())
	s.a.push(bad, svc, typ, mal)
	return []refusal{
			mustRefuse(bad, "cloud signature does not verify"), mustRefuse(svc, "cloud signature does not verify"),
			mustRefuse(typ, `typ "JWT"`), mustRefuse(mal, "malformed JWS"),
		}, func(t *testing.T) {
			s.noReplica(t, f1, f2, f3)
			s.noService(t, "a-forged")
		}
}

// attackUnpinnedKeys: an event signed by a key a publishes in its JWKS but
// not in its did:web document, and one by a key it never published.
func attackUnpinnedKeys(t *testing.T, s *hostileScene) ([]refusal, func(*testing.T)) {
	u1, u2 := s.a.newAccount("unpinned1"), s.a.newAccount("unpinned2")
	key, kid := s.a.rotateKey(false)
	stray, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	e1 := s.a.accountUpdated(u1, "Unpinned", signedBy(key, kid))
	e2 := s.a.accountUpdated(u2, "Stray", signedBy(stray, "never-published"))
	s.a.push(e1, e2)
	return []refusal{mustRefuse(e1, kid), mustRefuse(e2, "never-published", "not in its DID document")}, func(t *testing.T) {
		s.noReplica(t, u1, u2)
		p, err := s.cl.db.GetPeer(context.Background(), s.a.issuer)
		if err != nil || len(p.JWKS.Key(kid)) > 0 {
			t.Errorf("a key outside the did:web document was pinned: %v", err)
		}
		s.a.withdrawKey(kid)
	}
}

// attackResigned: a's feed carries events signed by b's key: about a's
// accounts (issuer a, and issuer b), and a genuine event of b about b's
// account replayed.
func attackResigned(t *testing.T, s *hostileScene) ([]refusal, func(*testing.T)) {
	r1, r2 := s.a.newAccount("resigned1"), s.a.newAccount("resigned2")
	e1 := s.a.accountUpdated(r1, "Resigned", resignedBy(s.b))
	e2 := s.a.accountUpdated(r2, "Resigned as b", resignedBy(s.b), withIss(s.b.issuer))
	// A genuine event of b (b could serve it) in a's feed.
	ofB := s.b.accountUpdated(s.dave, "Dave via a")
	replay := replayedAs(ofB, s.a.nextSeq())
	s.a.push(e1, e2, replay)
	return []refusal{mustRefuse(e1, s.b.kid), mustRefuse(e2, s.b.kid), mustRefuse(replay, s.b.kid)}, func(t *testing.T) {
		s.noReplica(t, r1, r2)
	}
}

// attackReplayed: a's own genuine earlier event served again, verbatim
// (its sequence is behind the cursor) and under a new sequence number.
func attackReplayed(t *testing.T, s *hostileScene) ([]refusal, func(*testing.T)) {
	rita := s.a.newAccount("rita")
	v1, v2 := s.a.accountUpdated(rita, "Rita 1"), s.a.accountUpdated(rita, "Rita 2")
	s.a.push(v1, v2)
	s.waitName(t, rita.did, "Rita 2")
	again := replayedAs(v1, s.a.nextSeq())
	s.a.push(v1, again)
	return []refusal{mustRefuse(again, fmt.Sprintf("sequence %d does not match the signed %d", again.Seq, v1.Seq))}, func(t *testing.T) {
		s.holds(t, rita.did, "Rita 2", s.a.issuer)
	}
}

// attackOutOfOrder: an event with a smaller sequence number, served after
// a larger one was applied, is never applied.
func attackOutOfOrder(t *testing.T, s *hostileScene) ([]refusal, func(*testing.T)) {
	oli := s.a.newAccount("oli")
	older, newer := s.a.nextSeq(), s.a.nextSeq()
	s.a.push(s.a.accountUpdated(oli, "Oli new", atSeq(newer)))
	s.waitName(t, oli.did, "Oli new")
	s.a.push(s.a.accountUpdated(oli, "Oli old", atSeq(older)))
	return nil, func(t *testing.T) {
		s.holds(t, oli.did, "Oli new", s.a.issuer)
		applied, err := s.cl.db.ListApplied(context.Background(), s.a.issuer, older-1, 2)
		if err != nil || len(applied) == 0 || applied[0].Seq != newer {
			t.Errorf("applied after %d: %+v %v, want only %d", older-1, applied, err, newer)
		}
	}
}

// attackSeqMismatch: items whose sequence number is not the signed one,
// among them one far ahead, which must not move the cursor.
func attackSeqMismatch(t *testing.T, s *hostileScene) ([]refusal, func(*testing.T)) {
	m1, m2 := s.a.newAccount("mismatch1"), s.a.newAccount("mismatch2")
	item, signed := s.a.nextSeq(), s.a.nextSeq()
	e1 := s.a.accountUpdated(m1, "Mismatch", withItemSeq(item), withPayloadSeq(signed))
	const far = int64(1) << 40
	e2 := s.a.accountUpdated(m2, "Far ahead", withItemSeq(far))
	// A genuine event in the same page: the cursor moves to it, not past
	// the forged number.
	m3 := s.a.newAccount("mismatch3")
	s.a.push(e1, e2, s.a.accountUpdated(m3, "Genuine"))
	return []refusal{mustRefuse(e1, fmt.Sprintf("sequence %d does not match the signed %d", item, signed)), mustRefuse(e2, "does not match the signed")},
		func(t *testing.T) {
			s.noReplica(t, m1, m2)
			s.holds(t, m3.did, "Genuine", s.a.issuer)
			if p, err := s.cl.db.GetPeer(context.Background(), s.a.issuer); err != nil || p.Cursor >= far {
				t.Errorf("a forged sequence number moved the cursor: %+v %v", p, err)
			}
		}
}

// attackWrongIssuer: events signed by a that name another issuer.
func attackWrongIssuer(t *testing.T, s *hostileScene) ([]refusal, func(*testing.T)) {
	w1, w2 := s.a.newAccount("wrongiss1"), s.a.newAccount("wrongiss2")
	e1 := s.a.accountUpdated(w1, "Iss b", withIss(s.b.issuer))
	e2 := s.a.accountUpdated(w2, "Iss victim", withIss(s.victim.base))
	s.a.push(e1, e2)
	return []refusal{mustRefuse(e1, fmt.Sprintf("for issuer %q", s.b.issuer)), mustRefuse(e2, fmt.Sprintf("for issuer %q", s.victim.base))},
		func(t *testing.T) { s.noReplica(t, w1, w2) }
}

// attackPersonSignature: person events without the account's signature,
// with a signature by another DID, by another key under the account's key
// id, and over other bytes.
func attackPersonSignature(t *testing.T, s *hostileScene) ([]refusal, func(*testing.T)) {
	p1, p2, p3, p4 := s.a.newAccount("person1"), s.a.newAccount("person2"), s.a.newAccount("person3"), s.a.newAccount("person4")
	other := s.a.newAccount("other")
	e1 := s.a.accountUpdated(p1, "No signature", noPersonSignature())
	e2 := s.a.accountUpdated(p2, "Other DID", personBy(other))
	e3 := s.a.accountUpdated(p3, "Other key", personKeyOf(other.signer))
	e4 := s.a.accountUpdated(p4, "Other bytes", personOver([]byte(`{"iss":"`+s.a.issuer+`","type":"account.updated"}`)))
	priv := s.a.event("privacy.updated", p1.did, s.a.accountData(p1, "Privacy"), personBy(p1))
	s.a.push(e1, e2, e3, e4, priv)
	return []refusal{
			mustRefuse(e1, "lacks the account's signature"), mustRefuse(e2, "account signature"), mustRefuse(e3, "account signature"),
			mustRefuse(e4, "account signature"), {seq: priv.Seq, reasons: []string{"held behind"}, held: true},
		}, func(t *testing.T) {
			s.noReplica(t, p1, p2, p3, p4, other)
		}
}

// attackTakeover: a writes accounts it is not home to: b's (moved to a,
// deleted, unshared, and updated with a's own person signature) and one
// homed on the victim (unshared, deleted, moved).
func attackTakeover(t *testing.T, s *hostileScene) ([]refusal, func(*testing.T)) {
	bobMoved := s.a.event("account.moved", s.bob.did, map[string]any{"to": s.a.issuer})
	bobDeleted := s.a.event("account.deleted", s.bob.did, map[string]any{"handle": "bob"})
	bobUnshared := s.a.event("account.updated", s.bob.did, nil, unsharedEvent())
	carol := []federation.Item{
		s.a.event("account.updated", s.carol, nil, unsharedEvent()),
		s.a.event("account.deleted", s.carol, map[string]any{"handle": "carol"}),
		s.a.event("account.moved", s.carol, map[string]any{"to": s.a.issuer}),
	}
	taken := s.a.accountUpdated(s.bob, "Bob taken", personBy(s.alice))
	s.a.push(append(append([]federation.Item{bobMoved, bobDeleted, bobUnshared}, carol...), taken)...)
	return []refusal{mustRefuse(taken, "account signature")}, func(t *testing.T) {
		for _, it := range carol {
			eventually(t, 5*time.Second, "the refusal to write carol logged", func() bool {
				return s.logged("ignored a peer event about an account homed here", it.Seq)
			})
		}
		// Bob is as b made it (before b writes again, which would heal it).
		s.holds(t, s.bob.did, "Bob", s.b.issuer)
		// b still writes its account.
		s.b.push(s.b.accountUpdated(s.bob, "Bob"))
		eventually(t, 5*time.Second, "b's event applied", func() bool {
			p, err := s.cl.db.GetPeer(context.Background(), s.b.issuer)
			return err == nil && p.Cursor == s.b.lastSeq()
		})
	}
}

// attackInternalDIDWeb: person-signed events of accounts whose did:web
// names an internal address: 0.0.0.0 (which reaches the canary on
// 127.0.0.1 when nothing guards the connection), the cloud metadata
// address, and a's own host, whose document redirects to the canary.
// Nothing reaches the canary, also when the follower retries the events
// at its reconnects and when the operator retries them.
func attackInternalDIDWeb(t *testing.T, s *hostileScene) ([]refusal, func(*testing.T)) {
	// 0.0.0.0 reaches a listener on 127.0.0.1 on this machine: the first
	// account below points at the canary for whoever does not guard.
	probe := newInternalCanary(t)
	if c, err := net.Dial("tcp", "0.0.0.0:"+probe.port); err == nil {
		c.Close()
		eventually(t, 2*time.Second, "the probe counts a connection to 0.0.0.0", func() bool { return probe.conns.Load() == 1 })
	} else {
		t.Logf("0.0.0.0 does not reach 127.0.0.1 here (%v): the 0.0.0.0 account tests the guard only", err)
	}
	var redirects atomic.Int64
	s.a.handle("/users/web2/did.json", func(w http.ResponseWriter, r *http.Request) {
		redirects.Add(1)
		http.Redirect(w, r, s.canary.srv.URL+"/did.json", http.StatusFound)
	})
	host := strings.TrimPrefix(s.a.issuer, "http://")
	w1 := s.a.webAccount("did:web:0.0.0.0%3A"+s.canary.port, "web1")
	w2 := s.a.webAccount("did:web:"+strings.ReplaceAll(host, ":", "%3A")+":users:web2", "web2")
	w3 := s.a.webAccount("did:web:169.254.169.254", "web3")
	e1, e2, e3 := s.a.accountUpdated(w1, "Web 1"), s.a.accountUpdated(w2, "Web 2"), s.a.accountUpdated(w3, "Web 3")
	s.a.push(e1, e2, e3)
	want := []refusal{mustRefuse(e1, "account signature"), mustRefuse(e2, "account signature"), mustRefuse(e3, "account signature")}
	return want, func(t *testing.T) {
		s.noReplica(t, w1, w2, w3)
		if redirects.Load() == 0 {
			t.Error("the cloud never asked a for the did:web document it names")
		}
		// The follower retries at its reconnects.
		s.a.cutStreams()
		eventually(t, 20*time.Second, "the follower retries the events", func() bool {
			qs := s.quarantinedOf(t)
			for _, w := range want {
				if q := qs[w.seq]; q == nil || q.Attempts < 2 {
					return false
				}
			}
			return true
		})
		// And so does the operator; nothing applies.
		r := s.victim.env.run(t, "", "peer", "retry", s.a.issuer, "--all")
		if r.code != 1 || !strings.Contains(r.stdout, "0 applied") {
			t.Errorf("peer retry --all: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		if n := s.canary.conns.Load(); n != 0 {
			t.Errorf("the internal canary got %d connections", n)
		}
		s.noReplica(t, w1, w2, w3)
	}
}

// attackForgedSectors: a announces services that claim sectors which are
// not theirs: b's service's sector as x_sector (its redirect URIs are
// elsewhere), the sector of a service of the victim as its family sector,
// and a family rooted in the victim's service with b's sector. The
// announcements are kept without the claimed family (x_unverified says
// why), forks of them are refused, and the holders keep their sectors.
func attackForgedSectors(t *testing.T, s *hostileScene) ([]refusal, func(*testing.T)) {
	ctx := context.Background()
	s.b.push(s.b.serviceRegistered(map[string]any{"client_id": "b-forum", "client_name": "Forum",
		"redirect_uris": []string{"https://forum.b.example/cb"}, "x_sector": "forum.b.example"}))
	eventually(t, 5*time.Second, "b's service recorded", func() bool {
		_, err := s.cl.db.RemoteService(ctx, s.b.issuer, "b-forum")
		return err == nil
	})
	notes := register(t, ctx, s.victim.base, map[string]any{"client_name": "Notes", "redirect_uris": []string{"https://notes.victim.example/cb"}})
	notesID := notes["client_id"].(string)
	svc := func(id, redirect string, extra map[string]any) federation.Item {
		md := map[string]any{"client_id": id, "client_name": id, "redirect_uris": []string{redirect}}
		for k, v := range extra {
			md[k] = v
		}
		return s.a.serviceRegistered(md)
	}
	s.a.push(
		svc("a-steal-b", "https://evil.hostile.example/cb", map[string]any{"x_sector": "forum.b.example"}),
		svc("a-steal-victim", "https://notes.victim.example/cb", map[string]any{"x_sector": "notes.victim.example",
			"x_family_root": "a-steal-victim", "x_family_sector": "notes.victim.example"}),
		svc("a-fake-family", "https://family.hostile.example/cb", map[string]any{"forked_from": s.victim.base + "#" + notesID,
			"x_sector": "family.hostile.example", "x_family_root": s.victim.base + "#" + notesID, "x_family_sector": "forum.b.example"}),
	)
	return nil, func(t *testing.T) {
		for _, id := range []string{"a-steal-b", "a-steal-victim", "a-fake-family"} {
			var md map[string]any
			eventually(t, 5*time.Second, "a's service "+id+" recorded", func() bool {
				raw, err := s.cl.db.RemoteService(ctx, s.a.issuer, id)
				return err == nil && json.Unmarshal(raw, &md) == nil
			})
			if md["x_unverified"] == nil || md["x_family_sector"] != nil || md["x_family_root"] != nil || md["x_sector"] == "forum.b.example" {
				t.Errorf("a's service %s is kept with the sector it claimed: %v", id, md)
			}
			body, _ := json.Marshal(map[string]any{"client_name": "fork", "redirect_uris": []string{"https://fork.example/cb"}, "forked_from": s.a.issuer + "#" + id})
			if st, out, _ := postRegistration(t, "POST", s.victim.base+"/register", "", string(body)); st != 400 || out["error"] != "invalid_client_metadata" {
				t.Errorf("a fork of %s registered: %d %v", id, st, out)
			}
		}
		var forum map[string]any
		raw, _ := s.cl.db.RemoteService(ctx, s.b.issuer, "b-forum")
		if json.Unmarshal(raw, &forum); forum["x_sector"] != "forum.b.example" || forum["x_unverified"] != nil {
			t.Errorf("b's service lost its sector: %v", forum)
		}
		if n := len(s.logRecords("peer service announcement not verified: it heads no family and forks of it are refused")); n < 3 {
			t.Errorf("%d refused announcements logged, want 3", n)
		}
	}
}

// attackOversize: an event larger than a feed page may be. The page is
// abandoned, the peer's last error says why, nothing is applied; once a
// stops serving it the feed goes on.
func attackOversize(t *testing.T, s *hostileScene) ([]refusal, func(*testing.T)) {
	big := s.a.newAccount("big")
	ev := s.a.oversize(big, 9<<20)
	s.a.push(ev)
	// The live stream is dropped at the event, then the page that holds it.
	dropped := func(what string) bool {
		for _, rec := range s.logRecords("dropped a peer's feed over the size limits") {
			if e, _ := rec["err"].(string); rec["peer"] == s.a.issuer && strings.HasPrefix(e, what) && strings.Contains(e, "over the federation size limit") {
				return true
			}
		}
		return false
	}
	eventually(t, 20*time.Second, "the stream and the page dropped over the size limits", func() bool {
		return dropped("stream of "+s.a.issuer) && dropped("feed page of "+s.a.issuer)
	})
	var peers []peerJSON
	json.Unmarshal([]byte(s.victim.env.must(t, "", "peer", "list", "--json")), &peers)
	if i := slices.IndexFunc(peers, func(p peerJSON) bool { return p.Issuer == s.a.issuer }); i < 0 || !strings.Contains(peers[i].LastError, "size limit") {
		t.Errorf("peer list does not show the size limit: %+v", peers)
	}
	s.a.drop(ev.Seq)
	return nil, func(t *testing.T) { s.noReplica(t, big) }
}

// feedGet calls one of the victim's feed endpoints with bearer tokens (no
// header for none).
func hostileFeedGet(t *testing.T, u string, tokens ...string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	for _, tok := range tokens {
		req.Header.Add("Authorization", "Bearer "+tok)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header, string(body)
}

// requestTokens: a, a peer of the victim, reads the victim's feed with a
// genuine request token; forged, expired, misaddressed and oversize ones
// get 401 invalid_token on /events and /stream and no event.
func (s *hostileScene) requestTokens(t *testing.T) {
	victim := s.victim.base
	// The feed has events to give away.
	if _, err := s.cl.db.LastEventSeq(context.Background()); err != nil {
		t.Fatal(err)
	}
	good := hostileRequestToken(t, s.a.key, s.a.kid, s.a.requestClaims(victim))
	if st, _, body := hostileFeedGet(t, victim+"/federation/v1/events", good); st != 200 || !strings.Contains(body, `"jws"`) {
		t.Fatalf("a genuine request token of a peer: %d %s", st, body)
	}
	stray, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	claims := func(edit func(*jwt.Claims)) jwt.Claims {
		c := s.a.requestClaims(victim)
		edit(&c)
		return c
	}
	ago := func(d time.Duration) *jwt.NumericDate { return jwt.NewNumericDate(time.Now().Add(-d)) }
	in := func(d time.Duration) *jwt.NumericDate { return jwt.NewNumericDate(time.Now().Add(d)) }
	sign := func(c jwt.Claims) string { return hostileRequestToken(t, s.a.key, s.a.kid, c) }
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	body, _ := json.Marshal(s.a.requestClaims(victim))
	cases := map[string][]string{
		"no token":                 nil,
		"empty":                    {""},
		"forged signature":         {hostileRequestToken(t, stray, s.a.kid, s.a.requestClaims(victim))},
		"unknown key id":           {hostileRequestToken(t, stray, "never-published", s.a.requestClaims(victim))},
		"signed by the other peer": {hostileRequestToken(t, s.b.key, s.b.kid, s.a.requestClaims(victim))},
		"alg none":                 {header + "." + base64.RawURLEncoding.EncodeToString(body) + "."},
		"expired": {sign(claims(func(c *jwt.Claims) {
			c.IssuedAt, c.NotBefore, c.Expiry = ago(10*time.Minute), ago(10*time.Minute), ago(5*time.Minute)
		}))},
		"not yet valid": {sign(claims(func(c *jwt.Claims) {
			c.NotBefore, c.IssuedAt, c.Expiry = in(5*time.Minute), in(5*time.Minute), in(6*time.Minute)
		}))},
		"lives too long": {sign(claims(func(c *jwt.Claims) { c.Expiry = in(time.Hour) }))},
		"wrong audience": {sign(claims(func(c *jwt.Claims) { c.Audience = jwt.Audience{s.b.issuer} }))},
		"no audience":    {sign(claims(func(c *jwt.Claims) { c.Audience = nil }))},
		"as the other peer": {sign(claims(func(c *jwt.Claims) {
			c.Issuer, c.Subject = s.b.issuer, s.b.issuer
		}))},
		"as a stranger": {sign(claims(func(c *jwt.Claims) {
			c.Issuer, c.Subject = "https://stranger.example", "https://stranger.example"
		}))},
		"subject another cloud": {sign(claims(func(c *jwt.Claims) { c.Subject = s.b.issuer }))},
		"oversize":              {sign(claims(func(c *jwt.Claims) { c.ID = strings.Repeat("j", 9<<10) }))},
		"two headers":           {good, good},
	}
	for name, toks := range cases {
		for _, path := range []string{"/federation/v1/events", "/federation/v1/stream"} {
			st, h, body := hostileFeedGet(t, victim+path, toks...)
			var out map[string]any
			json.Unmarshal([]byte(body), &out)
			if st != http.StatusUnauthorized || out["error"] != "invalid_token" || !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("%s on %s: %d %s %q", name, path, st, h.Get("WWW-Authenticate"), body)
			}
			if strings.Contains(body, "jws") || strings.Contains(body, "data:") {
				t.Errorf("%s on %s: the answer carries events: %s", name, path, body)
			}
		}
	}
}

// TestHostilePeerSilentSignIn: a peer sends a person who is signed in on
// their home cloud to the home's /authorize with prompt=none, naming
// itself as the client (client_id = its issuer, the brokered sign-in
// client that peer add made). The home must not sign the person in to that
// peer without asking them: the answer is an error redirect
// (consent_required, interaction_required or login_required), not a code
// whose ID token gives the peer the person's DID.
func TestHostilePeerSilentSignIn(t *testing.T) {
	t.Parallel()
	home := startCloud(t, sqliteEnv(t))
	h := newHostilePeer(t)
	home.env.must(t, "", "peer", "add", h.issuer)
	const pw = "correct horse battery"
	id := lastLine(home.env.must(t, pw+"\n", "user", "create", "--username", "alice", "--password-stdin"))
	b := newBrowser(t)
	if p := b.signIn(home.base, "alice", pw); p.url.Path != "/account" {
		t.Fatalf("sign in on the home: %d %s", p.status, p.url)
	}
	authorize := func(prompt string) (state, verifier string, p *page) {
		verifier, challenge := hostilePKCE()
		state = randString(12)
		q := url.Values{"client_id": {h.issuer}, "redirect_uri": {h.issuer + federation.CallbackPath}, "response_type": {"code"},
			"scope": {"openid"}, "state": {state}, "nonce": {randString(12)}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
		if prompt != "" {
			q.Set("prompt", prompt)
		}
		return state, verifier, b.get(home.base + "/authorize?" + q.Encode())
	}
	// redeem is what the peer does with a code: private_key_jwt with its
	// own key; it returns the ID token's sub.
	redeem := func(code, verifier string) (int, string) {
		st, tok := postForm(t, home.base+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"redirect_uri": {h.issuer + federation.CallbackPath}, "client_id": {h.issuer}, "code_verifier": {verifier},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {h.clientAssertion(home.base + "/token")}}, "", "")
		sub := "(not redeemed)"
		if raw, ok := tok["id_token"].(string); ok && st == 200 {
			sub, _ = jwtClaims(t, raw)["sub"].(string)
		}
		return st, sub
	}

	state, verifier, p := authorize("none")
	cb := h.lastCallback()
	if cb == nil {
		t.Fatalf("prompt=none for the peer answered %d at %s, not a redirect to the peer's callback:\n%s", p.status, p.url, p.body)
	}
	if code := cb.Get("code"); code != "" {
		st, sub := redeem(code, verifier)
		t.Fatalf("the home signed the person in to peer %s silently (prompt=none, never asked): a code, redeemed (%d) for an ID token with sub %q; the account DID is %s",
			h.issuer, st, sub, id)
	}
	if e := cb.Get("error"); e != "consent_required" && e != "interaction_required" && e != "login_required" {
		t.Fatalf("prompt=none for the peer: callback %v, want consent_required, interaction_required or login_required", cb)
	}
	if cb.Get("state") != state || strings.Contains(p.url.String(), url.QueryEscape(id)) {
		t.Fatalf("callback %s, want state %q and nothing of the account", p.url, state)
	}

	// The same request, asked of the person, who agrees: the peer gets a
	// code and redeems it for the DID. (So the refusal above is the
	// person's choice missing, not a peer that cannot sign in at all.)
	_, verifier, p = authorize("")
	if p.url.Path != "/consent/peer" || p.status != 200 || !strings.Contains(p.body, strings.TrimPrefix(h.issuer, "http://")) {
		t.Fatalf("asked without prompt=none: %d %s, want the home's page asking the person about %s\n%s", p.status, p.url, h.issuer, p.body)
	}
	form := formValues(p.body)
	form.Set("decision", "allow")
	b.post(home.base+"/consent/peer", form)
	cb = h.lastCallback()
	if st, sub := redeem(cb.Get("code"), verifier); st != 200 || sub != id {
		t.Fatalf("after the person agreed: callback %v, redeemed %d for sub %q, want the DID %s", cb, st, sub, id)
	}
}

// TestHostilePeerPoisonEvent: a genuine event of a peer whose content
// cannot be stored here (an account with the handle of another account of
// the same peer, under another DID) is quarantined like any content that
// cannot be applied, and the peer's feed goes on past it. A follower that
// takes the refusal of the store for a transient failure retries the same
// batch from its cursor for ever, and nothing of that peer is replicated
// again.
func TestHostilePeerPoisonEvent(t *testing.T) {
	t.Parallel()
	s := newHostileScene(t, sqliteEnv(t))
	s.attack(t, hostileAttack{name: "handle collision", run: func(t *testing.T, s *hostileScene) ([]refusal, func(*testing.T)) {
		twin := s.a.newAccount("alice") // alice's handle, another DID
		poison := s.a.accountUpdated(twin, "Alice's twin")
		s.a.push(poison)
		var state string
		eventually(t, 10*time.Second, "the poison event quarantined or the feed stalled", func() bool {
			if s.quarantinedOf(t)[poison.Seq] != nil {
				return true
			}
			p, err := s.cl.db.GetPeer(context.Background(), s.a.issuer)
			state = fmt.Sprintf("%+v", err)
			if err == nil {
				state = p.LastError
			}
			return err == nil && strings.Contains(p.LastError, fmt.Sprintf("event %d", poison.Seq))
		})
		if s.quarantinedOf(t)[poison.Seq] == nil {
			t.Fatalf("a's event %d (an account whose handle another replica of a holds) stalls a's feed instead of being quarantined; the follower retries it for ever: %s", poison.Seq, state)
		}
		return []refusal{mustRefuse(poison, "handle", "content")}, func(t *testing.T) { s.noReplica(t, twin) }
	}})
}
