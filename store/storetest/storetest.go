// Package storetest is the conformance suite that every store implementation
// passes. Run it from the implementation's tests:
//
//	storetest.Run(t, func(t *testing.T) storetest.Store { return openMyStore(t) })
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/keys"
	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

// Store is everything a full implementation provides.
type Store interface {
	identity.Store
	identity.SessionStore
	identity.PasskeyStore
	identity.CeremonyStore
	keys.Store
	privacy.Store
	oidc.Store
	federation.Store
	identity.SessionAccountStore
	identity.DIDLogStore
	PurgeExpired(ctx context.Context, now time.Time) (int64, error)
	FindReplicas(ctx context.Context, handle string) ([]*identity.Account, error)
	AppendEvent(ctx context.Context, typ, accountDID string, at time.Time, payload map[string]any) error
	ForgetAccount(ctx context.Context, did string) error
	GetMeta(ctx context.Context, key string) ([]byte, error)
	PutMetaIfAbsent(ctx context.Context, key string, value []byte) ([]byte, error)
}

// Run runs every conformance case, each on a fresh store from open.
func Run(t *testing.T, open func(t *testing.T) Store) {
	cases := []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"AccountCRUD", testAccountCRUD},
		{"DIDLogs", testDIDLogs},
		{"DIDLogStore", testDIDLogStore},
		{"AccountDuplicates", testAccountDuplicates},
		{"AccountUpdateAborts", testAccountUpdateAborts},
		{"AccountList", testAccountList},
		{"ConcurrentHandles", testConcurrentHandles},
		{"SigningKeys", testSigningKeys},
		{"SigningKeysEnsureConcurrent", testEnsureConcurrent},
		{"Meta", testMeta},
		{"Sessions", testSessions},
		{"Consents", testConsents},
		{"ConsentTermsHash", testConsentTermsHash}, // terms_cases.go
		{"ActivityAndSettings", testActivitySettings},
		{"ActivityConcurrent", testActivityConcurrent},
		{"OAuthRequestsConcurrent", testOAuthRequestsConcurrent},
		{"OAuthRequestsExchange", testOAuthRequestsExchange},
		{"RefreshReuse", testRefreshReuse},
		{"Clients", testClients},
		{"OAuthRequests", testOAuthRequests},
		{"Transactions", testTransactions},
		{"ChallengesAndPurge", testChallengesPurge},
		{"PurgeBatches", testPurgeBatches},
		{"ChallengeBounds", testChallengeBounds},
		{"PushedRequests", testPushedRequests},
		{"ReleaseContext", testReleaseContext},
		{"PasskeyUsers", testPasskeyUsers},
		{"Passkeys", testPasskeys},
		{"PasskeysForgotten", testPasskeysForgotten},
		{"Ceremonies", testCeremonies},
		{"Peers", testPeers},
		{"Quarantine", testQuarantine},
		{"FeedEpoch", testFeedEpoch},
		{"ReplicaSubjects", testReplicaSubjects},
		{"WitnessedLogs", testWitnessedLogs},
		{"PendingKeys", testPendingKeys},
		{"PeerGrants", testPeerGrants},
		{"SectorHolders", testSectorHolders},
		{"EventLog", testEventLog},
		{"EventOrderConcurrent", testEventOrderConcurrent},
		{"DPoPJTIs", testDPoPJTIs},
		{"Backchannel", testBackchannel},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fn(t, open(t))
		})
	}
}

var ctx = context.Background()

// fixed is a time with sub-millisecond digits, to check precision.
var fixed = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)

func account(handle string) *identity.Account {
	return &identity.Account{
		DID:                  "did:key:z6Mk" + strings.Repeat(handle, 2),
		Handle:               handle,
		Email:                handle + "@example.org",
		Name:                 strings.ToUpper(handle),
		PasswordHash:         "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
		Status:               identity.StatusActive,
		HomeIssuer:           "https://cloud.example",
		DIDKeySealed:         []byte{1, 2, 3},
		PairwiseSecretSealed: []byte{4, 5, 6},
		CreatedAt:            fixed,
		UpdatedAt:            fixed,
	}
}

func testAccountCRUD(t *testing.T, s Store) {
	a := account("alice")
	if err := s.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetAccount(ctx, a.DID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, got); diff != "" {
		t.Fatalf("GetAccount mismatch (-want +got):\n%s", diff)
	}
	got, err = s.GetAccountByHandle(ctx, "alice")
	if err != nil || got.DID != a.DID {
		t.Fatalf("GetAccountByHandle = %v, %v", got, err)
	}
	if _, err := s.GetAccount(ctx, "did:key:nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetAccount(unknown) err = %v, want ErrNotFound", err)
	}
	if _, err := s.GetAccountByHandle(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetAccountByHandle(unknown) err = %v, want ErrNotFound", err)
	}
	later := fixed.Add(time.Hour)
	err = s.UpdateAccount(ctx, a.DID, func(x *identity.Account) error {
		x.Name, x.Status, x.EmailVerified, x.UpdatedAt, x.DeletedAt = "Alice L.", identity.StatusDisabled, true, later, &later
		x.DIDKeySealed = nil
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetAccount(ctx, a.DID)
	want := *a
	want.Name, want.Status, want.EmailVerified, want.UpdatedAt, want.DeletedAt, want.DIDKeySealed = "Alice L.", identity.StatusDisabled, true, later, &later, nil
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Fatalf("after update (-want +got):\n%s", diff)
	}
	if err := s.UpdateAccount(ctx, "did:key:nobody", func(*identity.Account) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateAccount(unknown) err = %v, want ErrNotFound", err)
	}
}

func testAccountDuplicates(t *testing.T, s Store) {
	a := account("bob")
	if err := s.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	sameHandle := account("bob")
	sameHandle.DID = "did:key:other"
	var dup *store.DuplicateError
	if err := s.CreateAccount(ctx, sameHandle); !errors.As(err, &dup) || dup.Field != "handle" || !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("duplicate handle err = %v, want DuplicateError on handle", err)
	}
	sameDID := account("bobby")
	sameDID.DID = a.DID
	if err := s.CreateAccount(ctx, sameDID); !errors.As(err, &dup) || dup.Field != "did" {
		t.Fatalf("duplicate DID err = %v, want DuplicateError on did", err)
	}
	c := account("carol")
	if err := s.CreateAccount(ctx, c); err != nil {
		t.Fatal(err)
	}
	err := s.UpdateAccount(ctx, c.DID, func(x *identity.Account) error { x.Handle = "bob"; return nil })
	if !errors.As(err, &dup) || dup.Field != "handle" {
		t.Fatalf("rename onto a taken handle err = %v", err)
	}
	got, _ := s.GetAccount(ctx, c.DID)
	if got.Handle != "carol" {
		t.Fatalf("failed rename changed handle to %q", got.Handle)
	}
}

func testAccountUpdateAborts(t *testing.T, s Store) {
	a := account("dave")
	if err := s.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := s.UpdateAccount(ctx, a.DID, func(x *identity.Account) error {
		x.Name = "changed"
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the closure's error", err)
	}
	got, _ := s.GetAccount(ctx, a.DID)
	if got.Name != a.Name {
		t.Fatalf("aborted update was written: name %q", got.Name)
	}
}

func testAccountList(t *testing.T, s Store) {
	var want []string
	for i := range 25 {
		h := fmt.Sprintf("user%02d", i)
		want = append(want, h)
		if err := s.CreateAccount(ctx, account(h)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	after := ""
	for {
		page, err := s.ListAccounts(ctx, after, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 10 {
			t.Fatalf("page of %d, limit 10", len(page))
		}
		for _, a := range page {
			got = append(got, a.Handle)
		}
		if len(page) < 10 {
			break
		}
		after = page[len(page)-1].Handle
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("paged list (-want +got):\n%s", diff)
	}
}

// cheapSealer lets the concurrency case run through identity.Service without
// a real key-encryption key; it still round-trips values.
type cheapSealer struct{}

func (cheapSealer) Seal(p, aad []byte) ([]byte, error) { return append([]byte{}, p...), nil }
func (cheapSealer) Open(p, aad []byte) ([]byte, error) { return p, nil }

func testConcurrentHandles(t *testing.T, s Store) {
	svc := identity.NewService(s, cheapSealer{}, "https://cloud.example")
	svc.Argon2 = identity.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	const n, distinct = 50, 7
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created = map[string][]string{}
		errs    []error
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Mixed case: handles collide case-insensitively.
			h := fmt.Sprintf("Racer%d", i%distinct)
			if i%2 == 0 {
				h = strings.ToLower(h)
			}
			a, err := svc.Create(ctx, identity.CreateParams{Handle: h, Email: "r@example.org", Password: "correct horse battery"})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			created[a.Handle] = append(created[a.Handle], a.DID)
		}()
	}
	wg.Wait()
	if len(created) != distinct {
		t.Fatalf("created %d distinct handles, want %d", len(created), distinct)
	}
	for h, dids := range created {
		if len(dids) != 1 {
			t.Errorf("handle %s created %d times", h, len(dids))
		}
	}
	if len(errs) != n-distinct {
		t.Fatalf("%d errors, want %d: %v", len(errs), n-distinct, errs)
	}
	for _, err := range errs {
		if !errors.Is(err, identity.ErrHandleTaken) || !strings.Contains(err.Error(), "handle already taken") {
			t.Fatalf("err = %v, want a clear 'handle already taken'", err)
		}
	}
	var all []string
	for after := ""; ; {
		page, err := s.ListAccounts(ctx, after, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range page {
			all = append(all, a.Handle)
		}
		if len(page) < 100 {
			break
		}
		after = page[len(page)-1].Handle
	}
	sort.Strings(all)
	if len(all) != distinct {
		t.Fatalf("store holds %d accounts %v, want %d", len(all), all, distinct)
	}
}

func signingKey(kid, alg string, at time.Time) *keys.SigningKey {
	return &keys.SigningKey{KID: kid, Alg: alg, Status: keys.StatusActive, PrivateSealed: []byte("sealed-" + kid),
		PublicJWK: []byte(`{"kid":"` + kid + `"}`), CreatedAt: at}
}

func testSigningKeys(t *testing.T, s Store) {
	if err := s.AddSigningKey(ctx, signingKey("k1", keys.ES256, fixed), true); err != nil {
		t.Fatal(err)
	}
	if err := s.AddSigningKey(ctx, signingKey("k1b", keys.ES256, fixed), true); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("second active key with onlyIfNone: err = %v", err)
	}
	if err := s.AddSigningKey(ctx, signingKey("e1", keys.EdDSA, fixed), true); err != nil {
		t.Fatalf("an active key per algorithm: %v", err)
	}
	t2 := fixed.Add(time.Minute)
	if err := s.AddSigningKey(ctx, signingKey("k2", keys.ES256, t2), false); err != nil {
		t.Fatal(err)
	}
	ks, err := s.ListSigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, k := range ks {
		status[k.KID] = k.Status
		if k.KID == "k1" && (k.RotatedAt == nil || !k.RotatedAt.Equal(t2)) {
			t.Errorf("k1 rotated_at = %v, want %v", k.RotatedAt, t2)
		}
	}
	want := map[string]string{"k1": keys.StatusInactive, "k2": keys.StatusActive, "e1": keys.StatusActive}
	if diff := cmp.Diff(want, status); diff != "" {
		t.Fatalf("statuses (-want +got):\n%s", diff)
	}
	if ks[0].KID != "k2" {
		t.Fatalf("newest first: got %s first", ks[0].KID)
	}
	if err := s.RetireSigningKey(ctx, "k2", t2); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("retire active key: err = %v", err)
	}
	if err := s.RetireSigningKey(ctx, "k1", t2); err != nil {
		t.Fatal(err)
	}
	ks, _ = s.ListSigningKeys(ctx)
	for _, k := range ks {
		if k.KID == "k1" && (k.Status != keys.StatusRetired || k.RetiredAt == nil) {
			t.Fatalf("k1 after retire: %+v", k)
		}
	}
}

func testEnsureConcurrent(t *testing.T, s Store) {
	kek, err := keys.NewKEK(make([]byte, keys.KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	m := &keys.Manager{Store: s, KEK: kek}
	var wg sync.WaitGroup
	var mu sync.Mutex
	made := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := m.Ensure(ctx, keys.ES256)
			if err != nil {
				t.Error(err)
			}
			if c {
				mu.Lock()
				made++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	ks, _ := s.ListSigningKeys(ctx)
	if len(ks) != 1 || made != 1 {
		t.Fatalf("8 concurrent Ensure made %d keys (reported %d), want 1", len(ks), made)
	}
	sg, err := m.Active(ctx, keys.ES256)
	if err != nil || sg.KID != ks[0].KID {
		t.Fatalf("Active = %v, %v", sg, err)
	}
}

func testMeta(t *testing.T, s Store) {
	if _, err := s.GetMeta(ctx, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetMeta(unset) err = %v", err)
	}
	v, err := s.PutMetaIfAbsent(ctx, "x", []byte("first"))
	if err != nil || string(v) != "first" {
		t.Fatalf("PutMetaIfAbsent = %q, %v", v, err)
	}
	v, err = s.PutMetaIfAbsent(ctx, "x", []byte("second"))
	if err != nil || string(v) != "first" {
		t.Fatalf("second PutMetaIfAbsent = %q, %v; want the first value kept", v, err)
	}
}
