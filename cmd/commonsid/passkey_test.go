package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	endian "encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/go-webauthn/webauthn/protocol/webauthncbor"

	"github.com/onecommons/commonsid/privacy"
)

// startLocalhost is startLive with the issuer on "localhost": browsers and
// go-webauthn refuse passkeys for an IP address.
func startLocalhost(t *testing.T, e env) *live { return startLiveOn(t, e, "localhost") }

// Authenticator data flags (WebAuthn §6.1).
const (
	flagUP = 0x01
	flagUV = 0x04
	flagBE = 0x08
	flagBS = 0x10
	flagAT = 0x40
)

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// softKey is a software authenticator: one ES256 passkey, answering
// navigator.credentials.create and .get the way a browser relays them.
type softKey struct {
	t      *testing.T
	rpID   string
	origin string
	id     []byte
	key    *ecdsa.PrivateKey
	handle []byte // the user handle it was registered with
	count  uint32
	flags  byte // what it says of itself: synced (BE|BS) or not
}

func newSoftKey(t *testing.T, base string) *softKey {
	t.Helper()
	u, _ := url.Parse(base)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 20)
	rand.Read(id)
	return &softKey{t: t, rpID: u.Hostname(), origin: base, id: id, key: key, flags: flagBE | flagBS}
}

func (k *softKey) clientData(typ, challenge string) []byte {
	j, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": k.origin, "crossOrigin": false})
	return j
}

func (k *softKey) authData(flags byte, attested []byte) []byte {
	rp := sha256.Sum256([]byte(k.rpID))
	out := append(append([]byte{}, rp[:]...), flags)
	out = endian.BigEndian.AppendUint32(out, k.count)
	return append(out, attested...)
}

// cose is the public key as a COSE_Key: EC2, ES256, P-256.
func (k *softKey) cose() []byte {
	pt, err := k.key.PublicKey.Bytes()
	if err != nil {
		k.t.Fatal(err)
	}
	b, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: pt[1:33], -3: pt[33:65]})
	if err != nil {
		k.t.Fatal(err)
	}
	return b
}

func publicKeyOptions(t *testing.T, opts map[string]any) map[string]any {
	t.Helper()
	pk, ok := opts["publicKey"].(map[string]any)
	if !ok {
		t.Fatalf("no publicKey in the options: %v", opts)
	}
	return pk
}

// create makes the passkey for creation options, with these flags.
func (k *softKey) create(opts map[string]any, flags byte) map[string]any {
	k.t.Helper()
	pk := publicKeyOptions(k.t, opts)
	user := pk["user"].(map[string]any)
	var err error
	if k.handle, err = base64.RawURLEncoding.DecodeString(user["id"].(string)); err != nil {
		k.t.Fatalf("user.id: %v", err)
	}
	attested := make([]byte, 16) // AAGUID: not disclosed
	attested = endian.BigEndian.AppendUint16(attested, uint16(len(k.id)))
	attested = append(append(attested, k.id...), k.cose()...)
	att, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{},
		"authData": k.authData(flags|flagAT|k.flags, attested)})
	if err != nil {
		k.t.Fatal(err)
	}
	return map[string]any{"id": b64u(k.id), "rawId": b64u(k.id), "type": "public-key",
		"response": map[string]any{"clientDataJSON": b64u(k.clientData("webauthn.create", pk["challenge"].(string))),
			"attestationObject": b64u(att), "transports": []string{"internal", "hybrid"}}}
}

// get answers request options: the counter advances, then it signs
// authenticatorData || SHA-256(clientDataJSON) with signer, presenting
// credential id and user handle.
func (k *softKey) get(opts map[string]any, signer *ecdsa.PrivateKey, id, handle []byte) map[string]any {
	k.t.Helper()
	k.count++
	ad := k.authData(flagUP|flagUV|k.flags, nil)
	cd := k.clientData("webauthn.get", publicKeyOptions(k.t, opts)["challenge"].(string))
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, signer, digest[:])
	if err != nil {
		k.t.Fatal(err)
	}
	return map[string]any{"id": b64u(id), "rawId": b64u(id), "type": "public-key",
		"response": map[string]any{"clientDataJSON": b64u(cd), "authenticatorData": b64u(ad), "signature": b64u(sig),
			"userHandle": b64u(handle)}}
}

// register adds k as a passkey of the browser's account.
func (k *softKey) register(b *browser, base, name string) (int, map[string]any) {
	b.t.Helper()
	st, opts, _ := b.api("POST", base+"/account/api/passkeys/register/begin", map[string]any{})
	if st != 200 {
		b.t.Fatalf("register begin: %d %v", st, opts)
	}
	st, out, _ := b.api("POST", base+"/account/api/passkeys/register/finish?name="+url.QueryEscape(name), k.create(opts, flagUP|flagUV))
	return st, out
}

// passkeyLogin signs b in with the answer that answer builds from the options.
func passkeyLogin(b *browser, base, returnTo string, answer func(opts map[string]any) map[string]any) (int, map[string]any) {
	b.t.Helper()
	st, opts, _ := b.api("POST", base+"/login/passkey/begin", nil)
	if st != 200 {
		b.t.Fatalf("login begin: %d %v", st, opts)
	}
	q := ""
	if returnTo != "" {
		q = "?return_to=" + url.QueryEscape(returnTo)
	}
	st, out, _ := b.api("POST", base+"/login/passkey/finish"+q, answer(opts))
	return st, out
}

func (k *softKey) login(b *browser, base string) (int, map[string]any) {
	return passkeyLogin(b, base, "", func(opts map[string]any) map[string]any { return k.get(opts, k.key, k.id, k.handle) })
}

func listPasskeys(t *testing.T, b *browser, base string) []map[string]any {
	t.Helper()
	st, obj, arr := b.api("GET", base+"/account/api/passkeys", nil)
	if st != 200 {
		t.Fatalf("list passkeys: %d %v", st, obj)
	}
	var out []map[string]any
	for _, x := range arr {
		out = append(out, x.(map[string]any))
	}
	return out
}

func sessionCount(t *testing.T, cl *cloud, did string) int {
	t.Helper()
	ss, err := cl.db.ListSessions(context.Background(), did)
	if err != nil {
		t.Fatal(err)
	}
	return len(ss)
}

// TestPasskeys registers, lists, renames and removes passkeys through the
// dashboard API and signs in with one, on SQLite and PostgreSQL; every
// forged or replayed answer is refused and creates nothing.
func TestPasskeys(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func(testing.TB) env{"sqlite": sqliteEnv, "postgres": postgresEnv} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			l := startLocalhost(t, mk(t))
			const pw = "correct horse battery"
			aliceDID := lastLine(l.env.must(t, pw+"\n", "user", "create", "--username", "alice", "--name", "Alice", "--password-stdin"))
			bobDID := lastLine(l.env.must(t, pw+"\n", "user", "create", "--username", "bob", "--password-stdin"))
			cl := openTestCloud(t, l)
			alice, bob := newBrowser(t), newBrowser(t)
			alice.signIn(l.base, "alice", pw)
			bob.signIn(l.base, "bob", pw)

			// The pages: a script only where passkeys need it.
			p := alice.get(l.base + "/account/security")
			if !strings.Contains(p.body, `id="passkey-add"`) || !strings.Contains(p.body, `<script src="/static/passkey.js"`) || !strings.Contains(p.body, "no passkeys yet") {
				t.Fatalf("security page:\n%s", p.body)
			}
			if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
				t.Fatalf("security page CSP: %s", csp)
			}
			if csp := alice.get(l.base + "/account").header.Get("Content-Security-Policy"); strings.Contains(csp, "script-src") {
				t.Fatalf("a page without passkeys allows script: %s", csp)
			}
			if p := newBrowser(t).get(l.base + "/login"); !strings.Contains(p.body, "Sign in with a passkey") || !strings.Contains(p.header.Get("Content-Security-Policy"), "script-src 'self'") {
				t.Fatalf("login page: %s\n%s", p.header.Get("Content-Security-Policy"), p.body)
			}
			if p := newBrowser(t).get(l.base + "/static/passkey.js"); p.status != 200 || !strings.Contains(p.body, "navigator.credentials.create") {
				t.Fatalf("passkey.js: %d", p.status)
			}

			// Registration options: discoverable, user verification, this
			// host as relying party, an opaque user handle.
			st, opts, _ := alice.api("POST", l.base+"/account/api/passkeys/register/begin", nil)
			if st != 200 {
				t.Fatalf("register begin: %d %v", st, opts)
			}
			pk := publicKeyOptions(t, opts)
			sel, _ := pk["authenticatorSelection"].(map[string]any)
			rp, _ := pk["rp"].(map[string]any)
			user, _ := pk["user"].(map[string]any)
			handle, _ := base64.RawURLEncoding.DecodeString(fmt.Sprint(user["id"]))
			if rp["id"] != "localhost" || rp["name"] != "Commons ID" || sel["residentKey"] != "required" || sel["userVerification"] != "required" ||
				len(handle) != 32 || bytes.Contains(handle, []byte("did:")) || bytes.Contains(handle, []byte("alice")) {
				t.Fatalf("creation options: %v", pk)
			}

			// Register, list.
			key := newSoftKey(t, l.base)
			st, out := key.register(alice, l.base, "Laptop")
			if st != 200 || out["name"] != "Laptop" || out["id"] != b64u(key.id) {
				t.Fatalf("register: %d %v", st, out)
			}
			if !bytes.Equal(key.handle, handle) {
				t.Fatal("the user handle changed between two registrations")
			}
			list := listPasskeys(t, alice, l.base)
			if len(list) != 1 || list[0]["name"] != "Laptop" || list[0]["last_used_at"] != nil || list[0]["synced"] != true || list[0]["created_at"] == nil {
				t.Fatalf("list: %v", list)
			}
			// The same credential again: a clear 409, nothing added.
			st, out = key.register(alice, l.base, "Again")
			if st != 409 || out["error"] != "already_registered" {
				t.Fatalf("duplicate registration: %d %v", st, out)
			}
			// An authenticator that did not verify the person is refused.
			st, opts, _ = alice.api("POST", l.base+"/account/api/passkeys/register/begin", nil)
			if st != 200 {
				t.Fatalf("register begin: %d", st)
			}
			if st, out, _ := alice.api("POST", l.base+"/account/api/passkeys/register/finish?name=NoUV", newSoftKey(t, l.base).create(opts, flagUP)); st != 400 {
				t.Fatalf("registration without user verification: %d %v", st, out)
			}
			// Finishing needs the ceremony: a second finish has none.
			if st, out, _ := alice.api("POST", l.base+"/account/api/passkeys/register/finish?name=X", newSoftKey(t, l.base).create(opts, flagUP|flagUV)); st != 400 || out["error"] != "ceremony_expired" {
				t.Fatalf("finish without a ceremony: %d %v", st, out)
			}
			if n := len(listPasskeys(t, alice, l.base)); n != 1 {
				t.Fatalf("%d passkeys after refused registrations", n)
			}

			// Rename through the API and the form.
			id := b64u(key.id)
			if st, out, _ := alice.api("PUT", l.base+"/account/api/passkeys/"+id, map[string]any{"name": "  "}); st != 400 {
				t.Fatalf("empty name: %d %v", st, out)
			}
			if st, out, _ := alice.api("PUT", l.base+"/account/api/passkeys/"+id, map[string]any{"name": "Work laptop"}); st != 200 || out["name"] != "Work laptop" {
				t.Fatalf("rename: %d %v", st, out)
			}
			p = alice.post(l.base+"/account/passkeys/"+id+"/rename", url.Values{"name": {"Home laptop"}})
			if p.url.Query().Get("done") != "passkey-renamed" || !strings.Contains(p.body, "Home laptop") || !strings.Contains(p.body, "The passkey is renamed.") {
				t.Fatalf("rename form: %d %s\n%s", p.status, p.url, p.body)
			}

			p = alice.post(l.base+"/account/passkeys/"+id+"/rename", url.Values{"name": {"\t"}})
			if p.status != 400 || !strings.Contains(p.body, "must not be empty") || !strings.Contains(p.body, "Home laptop") {
				t.Fatalf("rename form with an empty name: %d\n%s", p.status, p.body)
			}
			// The page shown after a failed password change still renders.
			if p := alice.post(l.base+"/account/password", url.Values{"current_password": {"wrong"}, "new_password": {"new password 123"}}); p.status != 403 || !strings.Contains(p.body, "Show your passkeys") {
				t.Fatalf("security page after a failed password change: %d\n%s", p.status, p.body)
			}

			// A fresh browser signs in with the passkey.
			nb := newBrowser(t)
			st, out = key.login(nb, l.base)
			if st != 200 || out["redirect"] != "/account" {
				t.Fatalf("passkey login: %d %v", st, out)
			}
			if st, ov, _ := nb.api("GET", l.base+"/account/api/overview", nil); st != 200 || ov["did"] != aliceDID {
				t.Fatalf("after passkey login: %d %v", st, ov)
			}
			list = listPasskeys(t, alice, l.base)
			if list[0]["last_used_at"] == nil {
				t.Fatalf("last use not recorded: %v", list)
			}
			ss, _ := cl.db.ListSessions(ctx, aliceDID)
			if len(ss) != 2 || strings.Join(ss[0].AMR, " ") != "hwk user" {
				t.Fatalf("sessions after passkey login: %d, amr %v", len(ss), ss[0].AMR)
			}
			st, act, _ := alice.api("GET", l.base+"/account/api/activity?kind="+privacy.ActivityLogin, nil)
			if st != 200 || !strings.Contains(fmt.Sprint(act["entries"]), "method: passkey; passkey: Home laptop") {
				t.Fatalf("activity of the passkey sign-in: %v", act)
			}
			// return_to is followed when local, ignored when not.
			if st, out := passkeyLogin(newBrowser(t), l.base, "/account/profile", func(o map[string]any) map[string]any { return key.get(o, key.key, key.id, key.handle) }); st != 200 || out["redirect"] != "/account/profile" {
				t.Fatalf("return_to: %d %v", st, out)
			}
			if st, out := passkeyLogin(newBrowser(t), l.base, "//evil.example/x", func(o map[string]any) map[string]any { return key.get(o, key.key, key.id, key.handle) }); st != 200 || out["redirect"] != "/account" {
				t.Fatalf("foreign return_to: %d %v", st, out)
			}

			// Bob has a passkey of his own.
			bobKey := newSoftKey(t, l.base)
			if st, out := bobKey.register(bob, l.base, "Bob's key"); st != 200 {
				t.Fatalf("bob's registration: %d %v", st, out)
			}

			// Refusals: each is answered 401 (or 400 for a spent ceremony)
			// and leaves no session behind.
			before := sessionCount(t, cl, aliceDID) + sessionCount(t, cl, bobDID)
			stranger := newSoftKey(t, l.base)
			stored := key.count // the counter of alice's last sign-in
			refused := map[string]func(o map[string]any) map[string]any{
				"wrong signature": func(o map[string]any) map[string]any { return key.get(o, stranger.key, key.id, key.handle) },
				"unknown credential id": func(o map[string]any) map[string]any {
					return stranger.get(o, stranger.key, stranger.id, key.handle)
				},
				"unknown user handle": func(o map[string]any) map[string]any {
					return key.get(o, key.key, key.id, bytes.Repeat([]byte{7}, 32))
				},
				"another account's credential under alice's handle": func(o map[string]any) map[string]any {
					return bobKey.get(o, bobKey.key, bobKey.id, key.handle)
				},
				"alice's credential under bob's handle": func(o map[string]any) map[string]any {
					return key.get(o, key.key, key.id, bobKey.handle)
				},
				"signature counter not advancing": func(o map[string]any) map[string]any {
					key.count = stored - 1
					return key.get(o, key.key, key.id, key.handle)
				},
			}
			for what, answer := range refused {
				fb := newBrowser(t)
				if st, out := passkeyLogin(fb, l.base, "", answer); st != 401 || out["error"] != "passkey_refused" {
					t.Errorf("%s: %d %v", what, st, out)
				}
				if st, _, _ := fb.api("GET", l.base+"/account/api/overview", nil); st != 401 {
					t.Errorf("%s: signed in (%d)", what, st)
				}
			}
			key.count = stored + 10 // past the counter the server holds

			// A replayed answer: the same ceremony is spent, and a new
			// ceremony has a new challenge.
			rb := newBrowser(t)
			var captured map[string]any
			if st, _ := passkeyLogin(rb, l.base, "", func(o map[string]any) map[string]any {
				captured = key.get(o, key.key, key.id, key.handle)
				return captured
			}); st != 200 {
				t.Fatalf("login before the replay: %d", st)
			}
			before++
			eve := newBrowser(t)
			if st, out, _ := eve.api("POST", l.base+"/login/passkey/finish", captured); st != 400 || out["error"] != "ceremony_expired" {
				t.Errorf("replay without a ceremony: %d %v", st, out)
			}
			if st, out := passkeyLogin(eve, l.base, "", func(map[string]any) map[string]any { return captured }); st != 401 {
				t.Errorf("replay into a new ceremony: %d %v", st, out)
			}
			if n := sessionCount(t, cl, aliceDID) + sessionCount(t, cl, bobDID); n != before {
				t.Fatalf("refused sign-ins left sessions: %d, want %d", n, before)
			}

			// A disabled account gets the same answer as an unknown key.
			l.env.must(t, "", "user", "disable", "alice")
			if st, out := key.login(newBrowser(t), l.base); st != 401 || out["error"] != "passkey_refused" {
				t.Fatalf("disabled account: %d %v", st, out)
			}
			if st, _, _ := alice.api("GET", l.base+"/account/api/passkeys", nil); st != 401 {
				t.Fatalf("disabling did not end alice's session: %d", st)
			}
			l.env.must(t, "", "user", "enable", "alice")
			if st, out := key.login(alice, l.base); st != 200 {
				t.Fatalf("re-enabled account: %d %v", st, out)
			}

			// Isolation: bob can neither see nor change alice's passkey.
			for _, x := range listPasskeys(t, bob, l.base) {
				if x["id"] == id {
					t.Fatal("bob lists alice's passkey")
				}
			}
			if st, _, _ := bob.api("PUT", l.base+"/account/api/passkeys/"+id, map[string]any{"name": "Mine now"}); st != 404 {
				t.Errorf("bob renamed alice's passkey: %d", st)
			}
			if st, _, _ := bob.api("DELETE", l.base+"/account/api/passkeys/"+id, nil); st != 404 {
				t.Errorf("bob removed alice's passkey: %d", st)
			}
			if p := bob.post(l.base+"/account/passkeys/"+id+"/rename", url.Values{"name": {"Mine now"}}); p.status != 404 {
				t.Errorf("bob renamed alice's passkey through the form: %d", p.status)
			}
			if p := bob.post(l.base+"/account/passkeys/"+id+"/delete", nil); p.status != 404 {
				t.Errorf("bob removed alice's passkey through the form: %d", p.status)
			}
			if list := listPasskeys(t, alice, l.base); len(list) != 1 || list[0]["name"] != "Home laptop" {
				t.Fatalf("alice's passkey after bob's attempts: %v", list)
			}
			if st, _, _ := newBrowser(t).api("GET", l.base+"/account/api/passkeys", nil); st != 401 {
				t.Fatalf("passkeys without a session: %d", st)
			}

			// A registration is finished only by the session that began it.
			st, opts, _ = alice.api("POST", l.base+"/account/api/passkeys/register/begin", nil)
			if st != 200 {
				t.Fatalf("register begin: %d", st)
			}
			regURL, _ := url.Parse(l.base + "/account/api/passkeys/register/finish")
			alice2 := newBrowser(t)
			alice2.signIn(l.base, "alice", pw)
			for _, c := range alice.client.Jar.Cookies(regURL) {
				if c.Name == "commonsid_passkey" {
					alice2.client.Jar.SetCookies(regURL, []*http.Cookie{{Name: c.Name, Value: c.Value, Path: "/account/api/passkeys/register"}})
				}
			}
			if st, out, _ := alice2.api("POST", regURL.String()+"?name=Stolen", newSoftKey(t, l.base).create(opts, flagUP|flagUV)); st != 400 {
				t.Fatalf("finish from another session: %d %v", st, out)
			}

			// A stale sign-in needs the password to add a passkey.
			_, _, sessions := alice.api("GET", l.base+"/account/api/sessions", nil)
			var cur string
			for _, s := range sessions {
				if m := s.(map[string]any); m["current"] == true {
					cur = m["id"].(string)
				}
			}
			if err := cl.db.ReauthSession(ctx, cur, time.Now().Add(-10*time.Minute)); err != nil {
				t.Fatal(err)
			}
			if st, out, _ := alice.api("POST", l.base+"/account/api/passkeys/register/begin", nil); st != 403 || out["error"] != "reauth_required" {
				t.Fatalf("stale sign-in: %d %v", st, out)
			}
			if p := alice.get(l.base + "/account/security"); !strings.Contains(p.body, `<div id="passkey-reauth">`) {
				t.Fatalf("the page does not ask for the password:\n%s", p.body)
			}
			if st, out, _ := alice.api("POST", l.base+"/account/api/passkeys/register/begin", map[string]any{"password": "wrong"}); st != 403 || out["error"] != "reauth_failed" {
				t.Fatalf("stale sign-in, wrong password: %d %v", st, out)
			}
			second := newSoftKey(t, l.base)
			second.flags = 0 // a device-bound key
			st, opts, _ = alice.api("POST", l.base+"/account/api/passkeys/register/begin", map[string]any{"password": pw})
			if st != 200 {
				t.Fatalf("stale sign-in with the password: %d %v", st, opts)
			}
			if excl, _ := publicKeyOptions(t, opts)["excludeCredentials"].([]any); len(excl) != 1 || excl[0].(map[string]any)["id"] != id {
				t.Fatalf("exclusions: %v", excl)
			}
			if st, out, _ := alice.api("POST", l.base+"/account/api/passkeys/register/finish?name=Security+key", second.create(opts, flagUP|flagUV)); st != 200 || out["synced"] != false {
				t.Fatalf("register after reauth: %d %v", st, out)
			}
			if st, out := second.login(newBrowser(t), l.base); st != 200 {
				t.Fatalf("login with a device-bound key: %d %v", st, out)
			}

			// Remove: through the API and the form; a removed passkey
			// signs nobody in.
			if st, _, _ := alice.api("DELETE", l.base+"/account/api/passkeys/"+id, nil); st != 204 {
				t.Fatalf("remove: %d", st)
			}
			if st, _, _ := alice.api("DELETE", l.base+"/account/api/passkeys/"+id, nil); st != 404 {
				t.Fatalf("remove twice: %d", st)
			}
			if st, out := key.login(newBrowser(t), l.base); st != 401 {
				t.Fatalf("login with a removed passkey: %d %v", st, out)
			}
			p = alice.post(l.base+"/account/passkeys/"+b64u(second.id)+"/delete", nil)
			if p.url.Query().Get("done") != "passkey-removed" || !strings.Contains(p.body, "no passkeys yet") {
				t.Fatalf("remove form: %d %s", p.status, p.url)
			}
			st, act, _ = alice.api("GET", l.base+"/account/api/activity?kind=passkey.removed", nil)
			if entries, _ := act["entries"].([]any); st != 200 || len(entries) != 2 {
				t.Fatalf("removals in the activity log: %v", act)
			}
			if p := alice.get(l.base + "/account/activity"); !strings.Contains(p.body, "Passkey added") {
				t.Fatal("the activity page does not name passkey registrations")
			}

			// Deleting the account leaves no passkey behind.
			if st, out := key.register(alice, l.base, "Last one"); st != 200 {
				t.Fatalf("register before deletion: %d %v", st, out)
			}
			if p := alice.post(l.base+"/account/delete", url.Values{"password": {pw}, "confirm": {"yes"}}); p.status != 200 {
				t.Fatalf("delete: %d", p.status)
			}
			assertForgotten(t, cl.db.SQL(), aliceDID, []string{"Last one", "Home laptop"})
			if st, out := key.login(newBrowser(t), l.base); st != 401 {
				t.Fatalf("login with a deleted account's passkey: %d %v", st, out)
			}
			if list := listPasskeys(t, bob, l.base); len(list) != 1 {
				t.Fatalf("bob's passkeys after alice left: %v", list)
			}
		})
	}
}

// TestPasskeysOffOnIPIssuer: browsers refuse passkeys on an IP address, so
// such a cloud offers none and keeps working with passwords.
func TestPasskeysOffOnIPIssuer(t *testing.T) {
	t.Parallel()
	l := startLive(t, sqliteEnv(t))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	b := newBrowser(t)
	p := b.get(l.base + "/login")
	if strings.Contains(p.body, "passkey") || strings.Contains(p.header.Get("Content-Security-Policy"), "script-src") && strings.Contains(p.body, "<script") {
		t.Fatalf("login page offers passkeys:\n%s", p.body)
	}
	if st, _, _ := b.api("POST", l.base+"/login/passkey/begin", nil); st != 404 && st != 405 {
		t.Fatalf("passkey login on an IP issuer: %d", st)
	}
	b.signIn(l.base, "alice", "correct horse battery")
	if p := b.get(l.base + "/account/security"); p.status != 200 || !strings.Contains(p.body, "not available on this cloud") || strings.Contains(p.body, "<script") {
		t.Fatalf("security page:\n%s", p.body)
	}
	if st, _, _ := b.api("POST", l.base+"/account/api/passkeys/register/begin", nil); st == http.StatusOK {
		t.Fatal("registration offered on an IP issuer")
	}
}

// TestBrowserPasskey drives passkey.js in headless Chromium with a DevTools
// virtual authenticator: "Add a passkey" on the Security page, then "Sign in
// with a passkey" on /login in a browser without a session.
func TestBrowserPasskey(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	l := startLocalhost(t, sqliteEnv(t))
	const pw = "correct horse battery"
	aliceDID := lastLine(l.env.must(t, pw+"\n", "user", "create", "--username", "alice", "--name", "Alice", "--password-stdin"))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // a whole browser session; a busy machine runs tests in parallel
	defer cancel()
	tab := startChromium(t, ctx)
	dir := screenshotDir(t)
	ct := &chromeTab{t: t, tab: tab, dir: dir}
	do, text, shot := ct.do, ct.text, ct.shot
	at := ct.at

	// A platform authenticator that verifies the person and syncs.
	if _, err := chromedp.Call(tab, cdpwebauthn.Enable, cdpwebauthn.EnableParams{}); err != nil {
		t.Fatalf("WebAuthn.enable: %v", err)
	}
	va, err := chromedp.Call(tab, cdpwebauthn.AddVirtualAuthenticator, cdpwebauthn.AddVirtualAuthenticatorParams{Options: &cdpwebauthn.VirtualAuthenticatorOptions{
		Protocol: cdpwebauthn.AuthenticatorProtocolCtap2, Ctap2version: cdpwebauthn.Ctap2versionCtap21,
		Transport: cdpwebauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true, IsUserVerified: true,
		AutomaticPresenceSimulation: true, DefaultBackupEligibility: true, DefaultBackupState: true,
	}})
	if err != nil {
		t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}

	// Sign in with the password, then add a passkey.
	do("open the security page", chromedp.Navigate(l.base+"/account/security"), chromedp.WaitVisible(chromedp.ID("username")))
	do("sign in",
		chromedp.SendKeys(chromedp.ID("username"), "alice"),
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("passkey-add")),
	)
	at("/account/security")
	if hidden, _ := chromedp.Run(tab, chromedp.Evaluate[bool](`document.getElementById("passkey-unsupported").hidden`)); !hidden {
		t.Error("the page says passkeys are unsupported in a browser that supports them")
	}
	shot("01-security")
	do("add a passkey",
		chromedp.SendKeys(chromedp.ID("passkey-name"), "Chromium"),
		chromedp.Click(chromedp.ID("passkey-add-button")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	shot("02-added")
	if body := text(chromedp.Text(chromedp.CSS("ul.passkeys"))); !strings.Contains(body, "Chromium") || !strings.Contains(body, "synced") {
		errText, _ := chromedp.Run(tab, chromedp.Text(chromedp.ID("passkey-error")))
		t.Fatalf("passkey list %q (error %q)", body, errText)
	}
	creds, err := chromedp.Call(tab, cdpwebauthn.GetCredentials, cdpwebauthn.GetCredentialsParams(va))
	if err != nil {
		t.Fatal(err)
	}
	if len(creds.Credentials) != 1 || !creds.Credentials[0].IsResidentCredential || creds.Credentials[0].RpID != "localhost" ||
		len(creds.Credentials[0].UserHandle) != 32 || creds.Credentials[0].UserName != "alice" {
		t.Fatalf("the authenticator holds %+v", creds.Credentials)
	}

	// Signed out: the passkey signs in from /login, no handle typed.
	if _, err := chromedp.Call(tab, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	do("open /login", chromedp.Navigate(l.base+"/login?return_to=/account"), chromedp.WaitVisible(chromedp.ID("passkey-login")))
	shot("03-login")
	do("sign in with the passkey", chromedp.Click(chromedp.ID("passkey-login")), chromedp.WaitVisible(chromedp.ID("did")))
	at("/account")
	if got := text(chromedp.Text(chromedp.ID("did"))); got != aliceDID {
		t.Fatalf("signed in as %q, want %q", got, aliceDID)
	}
	shot("04-signed-in")

	// The page's Remove button works as a plain form.
	do("remove the passkey", chromedp.Navigate(l.base+"/account/security"), chromedp.WaitVisible(chromedp.CSS("ul.passkeys")),
		chromedp.Click(chromedp.CSS(`ul.passkeys button.danger`)), chromedp.WaitVisible(chromedp.CSS(".flash")))
	if body := text(chromedp.Text(chromedp.CSS("main"))); !strings.Contains(body, "no passkeys yet") {
		t.Fatalf("after removing: %s", body)
	}
	shot("05-removed")
}
