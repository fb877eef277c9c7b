package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/did/webvh"
)

var authT0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func authKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// authLog is the genesis log of an account at example.org: custodial key c,
// and person key p when given.
func authLog(t *testing.T, c ed25519.PrivateKey, p ed25519.PublicKey) *webvh.Log {
	t.Helper()
	l, err := genesisLog("example.org", "alice", c, p, nil, nil, authT0)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestCheckAuthority(t *testing.T) {
	cPub, cPriv := authKey(t)
	pPub, pPriv := authKey(t)
	otherPub, _ := authKey(t)
	at := authT0.Add(time.Minute)
	changes := map[string]func(signer ed25519.PrivateKey) webvh.UpdateOptions{
		"person key replaced": func(s ed25519.PrivateKey) webvh.UpdateOptions {
			return webvh.UpdateOptions{UpdateKeys: []ed25519.PublicKey{cPub, otherPub}, Time: at, Signer: s}
		},
		"person key removed": func(s ed25519.PrivateKey) webvh.UpdateOptions {
			return webvh.UpdateOptions{UpdateKeys: []ed25519.PublicKey{cPub}, Time: at, Signer: s}
		},
		"person key added": func(s ed25519.PrivateKey) webvh.UpdateOptions {
			return webvh.UpdateOptions{UpdateKeys: []ed25519.PublicKey{cPub, pPub, otherPub}, Time: at, Signer: s}
		},
		"update keys reordered": func(s ed25519.PrivateKey) webvh.UpdateOptions {
			return webvh.UpdateOptions{UpdateKeys: []ed25519.PublicKey{pPub, cPub}, Time: at, Signer: s}
		},
		"move": func(s ed25519.PrivateKey) webvh.UpdateOptions {
			return webvh.UpdateOptions{MoveTo: "other.example:accounts:alice", Time: at, Signer: s}
		},
		"deactivate": func(s ed25519.PrivateKey) webvh.UpdateOptions {
			return webvh.UpdateOptions{Deactivate: true, Time: at, Signer: s}
		},
		"nextKeyHashes": func(s ed25519.PrivateKey) webvh.UpdateOptions {
			return webvh.UpdateOptions{NextKeyHashes: []string{webvh.KeyHash(webvh.Multikey(otherPub))}, Time: at, Signer: s}
		},
		"portable": func(s ed25519.PrivateKey) webvh.UpdateOptions {
			return webvh.UpdateOptions{EndPortability: true, Time: at, Signer: s}
		},
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			l := authLog(t, cPriv, pPub)
			byCustodial, err := l.Update(change(cPriv))
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckAuthority(byCustodial.Result(), 0); !errors.Is(err, ErrPersonKeyRequired) {
				t.Fatalf("custodial-signed %s: %v, want ErrPersonKeyRequired", name, err)
			}
			// Checking from the entry itself skips it.
			if err := CheckAuthority(byCustodial.Result(), 2); err != nil {
				t.Fatalf("from 2: %v", err)
			}
			byPerson, err := l.Update(change(pPriv))
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckAuthority(byPerson.Result(), 0); err != nil {
				t.Fatalf("person-signed %s refused: %v", name, err)
			}
			// Without person keys the custodial key may do anything.
			solo, err := authLog(t, cPriv, nil).Update(change(cPriv))
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckAuthority(solo.Result(), 0); err != nil {
				t.Fatalf("no person keys, %s refused: %v", name, err)
			}
		})
	}

	t.Run("custodial rotation and witnesses by custodial", func(t *testing.T) {
		l := authLog(t, cPriv, pPub)
		newPub, newPriv := authKey(t)
		l, err := AppendCustodialKey(l, newPub, cPriv, at)
		if err != nil {
			t.Fatal(err)
		}
		wid, _ := did.KeyDIDFromPublic(otherPub)
		w := WitnessConfig([]string{wid})
		l, err = AppendWitnesses(l, w, newPriv, at.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		res := l.Result()
		if err := CheckAuthority(res, 0); err != nil {
			t.Fatal(err)
		}
		if want := []string{webvh.Multikey(newPub), webvh.Multikey(pPub)}; !slices.Equal(res.Metadata.UpdateKeys, want) {
			t.Fatalf("update keys %v, want %v", res.Metadata.UpdateKeys, want)
		}
		if res.Metadata.Witness == nil || res.Metadata.Witness.Threshold != 1 {
			t.Fatalf("witness %+v", res.Metadata.Witness)
		}
		if got := PersonKeys(res); !slices.Equal(got, []string{webvh.Multikey(pPub)}) {
			t.Fatalf("PersonKeys %v", got)
		}
		// The old custodial key can no longer sign.
		if _, err := AppendWitnesses(l, &webvh.Witness{}, cPriv, at.Add(2*time.Second)); !errors.Is(err, webvh.ErrUnauthorized) {
			t.Fatalf("old custodial key: %v", err)
		}
	})

	t.Run("builders refuse before publishing", func(t *testing.T) {
		l := authLog(t, cPriv, pPub)
		newPub, _ := authKey(t)
		if _, err := AppendMove(l, "https://other.example", newPub, nil, cPriv, at); !errors.Is(err, ErrPersonKeyRequired) {
			t.Fatalf("move by custodial: %v", err)
		}
		if _, err := AppendPersonKey(l, pPub, newPub, cPriv, at); !errors.Is(err, ErrPersonKeyRequired) {
			t.Fatalf("person key by custodial: %v", err)
		}
		l2, err := AppendPersonKey(l, pPub, newPub, pPriv, at)
		if err != nil {
			t.Fatal(err)
		}
		if got := PersonKeys(l2.Result()); !slices.Equal(got, []string{webvh.Multikey(newPub)}) {
			t.Fatalf("PersonKeys %v", got)
		}
		l3, err := AppendPersonKey(authLog(t, cPriv, nil), nil, pPub, cPriv, at)
		if err != nil {
			t.Fatal(err)
		}
		if got := PersonKeys(l3.Result()); !slices.Equal(got, []string{webvh.Multikey(pPub)}) {
			t.Fatalf("added PersonKeys %v", got)
		}
		if _, err := AppendPersonKey(l, cPub, newPub, pPriv, at); err == nil {
			t.Fatal("the custodial key was replaced as a person key")
		}
	})
}

func TestAppendMove(t *testing.T) {
	cPub, cPriv := authKey(t)
	pPub, pPriv := authKey(t)
	l := authLog(t, cPriv, pPub)
	old := l.Result().DID
	newPub, newPriv := authKey(t)
	moved, err := AppendMove(l, "http://localhost:8080/cloud", newPub, nil, pPriv, authT0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	res, err := webvh.Verify(moved.Bytes(), webvh.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Metadata.SCID != l.Result().Metadata.SCID {
		t.Fatal("SCID changed")
	}
	want := "did:webvh:" + res.Metadata.SCID + ":id.localhost%3A8080:cloud:accounts:alice"
	if res.DID != want {
		t.Fatalf("moved DID %s, want %s", res.DID, want)
	}
	if iss, name, err := IssuerOfWebVH(res.DID); err != nil || iss != "http://localhost:8080/cloud" || name != "alice" {
		t.Fatalf("IssuerOfWebVH: %q %q %v", iss, name, err)
	}
	var doc struct {
		ID                 string   `json:"id"`
		AlsoKnownAs        []string `json:"alsoKnownAs"`
		VerificationMethod []struct {
			ID, Controller, PublicKeyMultibase string
		} `json:"verificationMethod"`
		AssertionMethod []string `json:"assertionMethod"`
	}
	if err := json.Unmarshal(res.Document, &doc); err != nil {
		t.Fatal(err)
	}
	vm := want + "#" + webvh.Multikey(newPub)
	if doc.ID != want || !slices.Contains(doc.AlsoKnownAs, old) || len(doc.VerificationMethod) != 1 ||
		doc.VerificationMethod[0].ID != vm || doc.VerificationMethod[0].PublicKeyMultibase != webvh.Multikey(newPub) ||
		!slices.Equal(doc.AssertionMethod, []string{vm}) {
		t.Fatalf("moved document %s", res.Document)
	}
	if !slices.Equal(res.Metadata.UpdateKeys, []string{webvh.Multikey(newPub), webvh.Multikey(pPub)}) {
		t.Fatalf("update keys %v", res.Metadata.UpdateKeys)
	}
	if err := CheckAuthority(res, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := AppendWitnesses(moved, &webvh.Witness{}, newPriv, authT0.Add(2*time.Minute)); err != nil {
		t.Fatalf("new custodial key: %v", err)
	}
	if _, err := AppendWitnesses(moved, &webvh.Witness{}, cPriv, authT0.Add(2*time.Minute)); !errors.Is(err, webvh.ErrUnauthorized) {
		t.Fatalf("old custodial key: %v", err)
	}
	_ = cPub

	// Without person keys the custodial key moves the account.
	solo := authLog(t, cPriv, nil)
	if _, err := AppendMove(solo, "https://other.example", newPub, WitnessConfig(nil), cPriv, authT0.Add(time.Minute)); err != nil {
		t.Fatalf("custodial move without person keys: %v", err)
	}
}

func TestPreferLog(t *testing.T) {
	_, cPriv := authKey(t)
	base := authLog(t, cPriv, nil)
	a, err := AppendWitnesses(base, &webvh.Witness{}, cPriv, authT0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	b, err := AppendWitnesses(base, &webvh.Witness{}, cPriv, authT0.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	a2, err := AppendWitnesses(a, &webvh.Witness{}, cPriv, authT0.Add(3*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	ra, rb, rbase, ra2 := a.Result(), b.Result(), base.Result(), a2.Result()
	if PreferLog(ra, rbase) <= 0 || PreferLog(rbase, ra) >= 0 || PreferLog(ra2, ra) <= 0 || PreferLog(ra, ra2) >= 0 {
		t.Fatal("an extension must win")
	}
	again, err := webvh.Verify(a.Bytes(), webvh.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if PreferLog(ra, again) != 0 || PreferLog(ra, ra) != 0 {
		t.Fatal("equal logs")
	}
	// Fork: the smaller versionId at version 2 wins, in both orders, and
	// a longer branch does not beat it.
	winner, loser := ra, rb
	if rb.Entries[1].VersionID < ra.Entries[1].VersionID {
		winner, loser = rb, ra
	}
	if PreferLog(winner, loser) <= 0 || PreferLog(loser, winner) >= 0 {
		t.Fatal("fork not decided by the smaller versionId")
	}
	if winner == rb {
		if PreferLog(rb, ra2) <= 0 || PreferLog(ra2, rb) >= 0 {
			t.Fatal("a longer losing branch won")
		}
	} else if PreferLog(ra2, rb) <= 0 || PreferLog(rb, ra2) >= 0 {
		t.Fatal("the extension of the winning branch lost")
	}
	if PreferLog(nil, ra) >= 0 || PreferLog(ra, nil) <= 0 || PreferLog(nil, nil) != 0 {
		t.Fatal("nil logs")
	}
}

func TestIssuerOfWebVH(t *testing.T) {
	const scid = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
	for _, iss := range []string{"http://localhost:8080", "http://localhost", "https://example.org", "https://example.org/cloud", "https://id.example.org:8443/a/b"} {
		hp, err := WebVHHostPath(iss)
		if err != nil {
			t.Fatal(iss, err)
		}
		d := "did:webvh:" + scid + ":" + hp + ":accounts:abc234"
		got, name, err := IssuerOfWebVH(d)
		if err != nil || got != iss || name != "abc234" {
			t.Fatalf("%s: %q %q %v, want %q", d, got, name, err, iss)
		}
	}
	if got, _, _ := IssuerOfWebVH("did:webvh:" + scid + ":id.localhost%3A8080:accounts:N"); got != "http://localhost:8080" {
		t.Fatalf("localhost: %q", got)
	}
	if got, _, _ := IssuerOfWebVH("did:webvh:" + scid + ":example.org:cloud:accounts:N"); got != "https://example.org/cloud" {
		t.Fatalf("issuer path: %q", got)
	}
	for _, bad := range []string{
		"did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
		"did:webvh:" + scid + ":example.org",
		"did:webvh:" + scid + ":example.org:accounts",
		"did:webvh:" + scid + ":example.org:users:alice",
		"did:webvh:" + scid + ":example.org:accounts:alice:more",
		"did:webvh:" + scid + ":example.org:accounts:a.b",
		"did:webvh:" + scid + ":example.org:accounts:a%2520b",
		"did:webvh:notascid:example.org:accounts:alice",
	} {
		if _, _, err := IssuerOfWebVH(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestWitnessConfig(t *testing.T) {
	w := WitnessConfig([]string{"did:key:zC", "did:key:zA", "did:key:zB", "did:key:zA", ""})
	if w.Threshold != 2 || len(w.Witnesses) != 3 || w.Witnesses[0].ID != "did:key:zA" || w.Witnesses[2].ID != "did:key:zC" {
		t.Fatalf("%+v", w)
	}
	if w := WitnessConfig([]string{"did:key:zA", "did:key:zB"}); w.Threshold != 2 {
		t.Fatalf("two witnesses: threshold %d", w.Threshold)
	}
	if w := WitnessConfig(nil); w.Active() {
		t.Fatalf("no ids: %+v", w)
	}
}

func TestUpgradeLog(t *testing.T) {
	key, err := did.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	pPub, _ := authKey(t)
	dl, err := UpgradeLog(key.DID, key.Private, pPub, "https://example.org", authT0)
	if err != nil {
		t.Fatal(err)
	}
	res, err := webvh.Verify(dl.Log, webvh.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		AlsoKnownAs []string `json:"alsoKnownAs"`
	}
	if err := json.Unmarshal(res.Document, &doc); err != nil {
		t.Fatal(err)
	}
	cmk := webvh.Multikey(key.Private.Public().(ed25519.PublicKey))
	if dl.DID != key.DID || dl.CurrentDID != res.DID || dl.SCID != res.Metadata.SCID || !slices.Equal(doc.AlsoKnownAs, []string{key.DID}) ||
		!res.Metadata.Portable || !slices.Equal(res.Metadata.UpdateKeys, []string{cmk, webvh.Multikey(pPub)}) {
		t.Fatalf("upgrade log %+v: %s", dl, res.Document)
	}
	if iss, name, err := IssuerOfWebVH(dl.CurrentDID); err != nil || iss != "https://example.org" || name != dl.Name {
		t.Fatalf("IssuerOfWebVH: %q %q %v", iss, name, err)
	}
	other, _ := did.NewKey()
	if _, err := UpgradeLog(key.DID, other.Private, nil, "https://example.org", authT0); err == nil {
		t.Fatal("upgrade with another key accepted")
	}
}
