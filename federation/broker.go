package federation

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/metrics"
	"github.com/onecommons/commonsid/store"
)

// Brokered sign-in: on a cloud that is not the account's home, the person
// signs in with their home cloud. This cloud is an OpenID Connect client of
// the home (client_id: this cloud's issuer URL, registered there when the
// home added this cloud as a peer; private_key_jwt with this cloud's key);
// the home authenticates the person and answers with an ID token whose sub
// is the account DID; this cloud then starts its own sign-on session for
// its replica of the account. Password hashes never leave the home.
//
// The home asks the person first, once per visited cloud (oidc/peerconsent.go):
// the authorization request names the service being signed in to in the
// service_client_id parameter (its client_id here, which the home looks up
// in the services this cloud announced). Allowing is a grant to this cloud
// that also shares the account with it (federation/sharing.go): the replica
// arrives on this cloud's feed from the home moments later, so the callback
// waits for it (ReplicaWait) before it gives up with a readable page.

// ServiceParam is the authorization request parameter naming the service a
// brokered sign-in is for.
const ServiceParam = "service_client_id"

// maxServiceParam is the longest service_client_id a home accepts (the
// bound of short authorization parameters); a longer one is left out.
const maxServiceParam = 256

// ReplicaWait bounds how long the callback waits for the replica of an
// account the home just shared, polling every replicaPoll.
const (
	ReplicaWait = 5 * time.Second
	replicaPoll = 50 * time.Millisecond
)

// CallbackPath is where home clouds send the person back.
const CallbackPath = "/federation/v1/callback"

const brokerCookie = "commonsid_broker"

// brokerState travels sealed in a short-lived cookie.
type brokerState struct {
	Home     string `json:"home"`
	State    string `json:"state"`
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"`
	ReturnTo string `json:"return_to"`
	Exp      int64  `json:"exp"`
}

var brokerAAD = []byte("commonsid/federation/broker-state")

func randomString() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// localPath allows only paths on this site.
func localPath(p string) string {
	if p == "" || len(p) > 2048 || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return "/"
	}
	return p
}

func (f *Federation) errorPage(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	if f.ErrorPage != nil {
		f.ErrorPage(w, r, status, title, msg)
		return
	}
	http.Error(w, title+": "+msg, status)
}

// brokerStart is GET /federation/v1/broker?home=ISSUER&return_to=PATH.
func (f *Federation) brokerStart(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	home := r.URL.Query().Get("home")
	p, err := f.Store.GetPeer(ctx, strings.TrimRight(home, "/"))
	if errors.Is(err, store.ErrNotFound) {
		f.errorPage(w, r, http.StatusBadRequest, "Unknown home cloud", fmt.Sprintf("%q is not a cloud this one federates with.", home))
		return
	}
	if err != nil {
		f.serverError(w, r, err)
		return
	}
	var meta struct {
		Authorization string `json:"authorization_endpoint"`
	}
	if err := json.Unmarshal(p.Metadata, &meta); err != nil || meta.Authorization == "" {
		f.errorPage(w, r, http.StatusBadGateway, "Home cloud unavailable", "The home cloud's sign-in address is not known here.")
		return
	}
	st := brokerState{Home: p.Issuer, State: randomString(), Nonce: randomString(), Verifier: randomString(),
		ReturnTo: localPath(r.URL.Query().Get("return_to")), Exp: f.now().Add(10 * time.Minute).Unix()}
	raw, _ := json.Marshal(st)
	sealed, err := f.Keys.KEK.Seal(raw, brokerAAD)
	if err != nil {
		f.serverError(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: brokerCookie, Value: base64.RawURLEncoding.EncodeToString(sealed), Path: "/federation/v1/",
		MaxAge: 600, HttpOnly: true, Secure: strings.HasPrefix(f.Issuer, "https://"), SameSite: http.SameSiteLaxMode})
	sum := sha256.Sum256([]byte(st.Verifier))
	q := url.Values{
		"response_type": {"code"}, "client_id": {f.Issuer}, "redirect_uri": {f.Issuer + CallbackPath},
		"scope": {"openid"}, "state": {st.State}, "nonce": {st.Nonce},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	if f.ServiceOf != nil {
		if svc := f.ServiceOf(ctx, st.ReturnTo); svc != "" && len(svc) <= maxServiceParam {
			q.Set(ServiceParam, svc)
		}
	}
	http.Redirect(w, r, meta.Authorization+"?"+q.Encode(), http.StatusSeeOther)
}

func (f *Federation) serverError(w http.ResponseWriter, r *http.Request, err error) {
	f.log().ErrorContext(r.Context(), "federation", "err", err)
	f.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "Please try again in a moment.")
}

// brokerCallback is where the home cloud returns the person.
func (f *Federation) brokerCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, err := r.Cookie(brokerCookie)
	var st brokerState
	if err == nil {
		var sealed, raw []byte
		if sealed, err = base64.RawURLEncoding.DecodeString(c.Value); err == nil {
			if raw, err = f.Keys.KEK.Open(sealed, brokerAAD); err == nil {
				err = json.Unmarshal(raw, &st)
			}
		}
	}
	q := r.URL.Query()
	if err != nil || st.Exp < f.now().Unix() || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(st.State)) != 1 {
		f.errorPage(w, r, http.StatusBadRequest, "Sign-in expired", "This sign-in with your home cloud is unknown or has expired. Please start again.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: brokerCookie, Value: "", Path: "/federation/v1/", MaxAge: -1, HttpOnly: true})
	if e := q.Get("error"); e != "" {
		metrics.SignIn(metrics.MethodFederated, metrics.OutcomeBadCredentials)
		f.errorPage(w, r, http.StatusForbidden, "Not signed in", fmt.Sprintf("Your home cloud answered %q: %s", e, q.Get("error_description")))
		return
	}
	p, err := f.Store.GetPeer(ctx, st.Home)
	if err != nil {
		f.errorPage(w, r, http.StatusBadRequest, "Unknown home cloud", "That cloud is no longer a peer of this one.")
		return
	}
	subject, err := f.redeem(ctx, p, q.Get("code"), st)
	if err != nil {
		metrics.SignIn(metrics.MethodFederated, metrics.OutcomeBadCredentials)
		f.log().WarnContext(ctx, "brokered sign-in failed", "home", p.Issuer, "err", err, "request_id", middleware.GetReqID(ctx))
		f.errorPage(w, r, http.StatusBadGateway, "Sign-in failed", "Your home cloud's answer could not be verified. Please try again.")
		return
	}
	a, err := f.awaitReplica(ctx, subject, p.Issuer)
	if err != nil {
		f.serverError(w, r, err)
		return
	}
	if a == nil || a.Status != identity.StatusActive {
		f.errorPage(w, r, http.StatusForbidden, "Your account is not shared with this cloud",
			fmt.Sprintf("You signed in at %s, but your account has not reached this cloud. Your home cloud may be slow to answer: "+
				"please try again in a moment. If it keeps happening, check on your home cloud's privacy page that this cloud "+
				"may sign you in.", p.Issuer))
		return
	}
	if f.StartSession == nil {
		f.serverError(w, r, errors.New("no session starter configured"))
		return
	}
	if err := f.StartSession(w, r, a, []string{"fed"}, map[string]any{"method": "home cloud", "home": p.Issuer}); err != nil {
		f.serverError(w, r, err)
		return
	}
	http.Redirect(w, r, st.ReturnTo, http.StatusSeeOther)
}

// redeem exchanges the code at the home's token endpoint, authenticating
// with a client assertion signed by this cloud's key, and verifies the ID
// token. It returns its subject: the account DID.
func (f *Federation) redeem(ctx context.Context, p *Peer, code string, st brokerState) (string, error) {
	var meta struct {
		Token string `json:"token_endpoint"`
	}
	if err := json.Unmarshal(p.Metadata, &meta); err != nil || meta.Token == "" {
		return "", errors.New("no token endpoint")
	}
	s, err := f.cloudSigner(ctx, "JWT")
	if err != nil {
		return "", err
	}
	now := f.now()
	assertion, err := jwt.Signed(s).Claims(jwt.Claims{Issuer: f.Issuer, Subject: f.Issuer, Audience: jwt.Audience{meta.Token},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Minute)), ID: randomString()}).Serialize()
	if err != nil {
		return "", err
	}
	form := url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {f.Issuer + CallbackPath},
		"code_verifier": {st.Verifier}, "client_id": {f.Issuer},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion},
	}
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(tctx, http.MethodPost, meta.Token, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := f.client().Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token endpoint: %s: %s", resp.Status, body)
	}
	var tr struct {
		IDToken string `json:"id_token"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.IDToken == "" {
		return "", errors.New("token response without id_token")
	}
	tok, err := jwt.ParseSigned(tr.IDToken, signingAlgs)
	if err != nil || len(tok.Headers) != 1 {
		return "", errors.New("malformed id_token")
	}
	key, err := f.peerKey(ctx, p, tok.Headers[0].KeyID)
	if err != nil {
		return "", err
	}
	var (
		std   jwt.Claims
		extra struct {
			Nonce string `json:"nonce"`
		}
	)
	if err := tok.Claims(key.Key, &std, &extra); err != nil {
		return "", errors.New("id_token signature does not verify")
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: p.Issuer, AnyAudience: jwt.Audience{f.Issuer}, Time: f.now()}, 30*time.Second); err != nil {
		return "", fmt.Errorf("id_token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(extra.Nonce), []byte(st.Nonce)) != 1 {
		return "", errors.New("id_token nonce does not match")
	}
	if !strings.HasPrefix(std.Subject, "did:") {
		return "", fmt.Errorf("id_token subject %q is not a DID", std.Subject)
	}
	return std.Subject, nil
}

// awaitReplica returns the replica of the account did homed on home, waiting
// up to ReplicaWait for it to arrive from the home's feed (a grant given a
// moment ago shares it); nil when it does not come.
func (f *Federation) awaitReplica(ctx context.Context, did, home string) (*identity.Account, error) {
	ctx, cancel := context.WithTimeout(ctx, ReplicaWait)
	defer cancel()
	tick := time.NewTicker(replicaPoll)
	defer tick.Stop()
	for {
		a, err := f.Store.GetAccount(ctx, did)
		switch {
		case err == nil && a.HomeIssuer == home:
			return a, nil
		case err != nil && !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil:
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-tick.C:
		}
	}
}
