package portable_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/testpg"
	"github.com/onecommons/commonsid/keys"
	"github.com/onecommons/commonsid/portable"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/server"
	"github.com/onecommons/commonsid/store/sqlstore"
)

// noServices: the benchmark carries no consents.
type noServices struct{}

func (noServices) Describe(context.Context, string) (string, string, bool) { return "", "", false }
func (noServices) Match(context.Context, portable.Consent) (string, bool)  { return "", false }

func openDB(b *testing.B, dsn string) *sqlstore.DB {
	b.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	return db
}

// cloud is one cloud's stores and services for the benchmark.
func cloud(b *testing.B, db *sqlstore.DB, issuer string) *portable.Service {
	kek, _ := keys.NewKEK(make([]byte, keys.KEKSize))
	km := &keys.Manager{Store: db, KEK: kek}
	if _, err := km.Ensure(context.Background(), keys.DefaultAlg); err != nil {
		b.Fatal(err)
	}
	acc := identity.NewService(db, kek, issuer)
	acc.Argon2 = identity.Argon2Params{Memory: identity.Argon2MinMemory, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	return &portable.Service{Store: db, Accounts: acc, Keys: km, Services: noServices{}, Resolver: &did.Resolver{},
		Issuer: issuer, Now: time.Now}
}

// BenchmarkMoveStored exports an account with 10,000 activity entries from
// a cloud and imports it into another of the same database kind (SQLite,
// PostgreSQL), through the stores (the figures include the 210,000-iteration passphrase
// derivation, twice each way).
func BenchmarkMoveStored(b *testing.B) {
	ctx := context.Background()
	for _, target := range []string{"sqlite", "postgres"} {
		b.Run(target, func(b *testing.B) {
			// The exporting cloud serves its did:web document.
			var src *portable.Service
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				cloudDID, _ := did.WebDID(src.Issuer)
				doc, err := server.CloudDocument(r.Context(), cloudDID, src.Keys)
				if err != nil {
					http.Error(w, err.Error(), 500)
					return
				}
				json.NewEncoder(w).Encode(doc)
			}))
			defer ts.Close()
			srcDSN := "sqlite:" + filepath.Join(b.TempDir(), "a.db")
			if target == "postgres" {
				srcDSN = testpg.DSN(b)
			}
			src = cloud(b, openDB(b, srcDSN), ts.URL)
			a, err := src.Accounts.Create(ctx, identity.CreateParams{Handle: "alice", Email: "alice@example.org", Password: "correct horse battery"})
			if err != nil {
				b.Fatal(err)
			}
			db := src.Store.(*sqlstore.DB)
			err = db.InTx(ctx, func(ctx context.Context) error {
				for i := range 10000 {
					if err := db.AppendActivity(ctx, &privacy.Activity{AccountDID: a.DID, At: time.Now().Add(-time.Duration(i) * time.Minute),
						Kind: privacy.ActivityRelease, ClientID: "svc", IP: "192.0.2.1", UserAgent: "bench",
						Detail: map[string]any{"claims": []any{"name", "email"}, "scopes": []any{"openid", "email"}}}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			var file []byte
			b.Run("export", func(b *testing.B) {
				for b.Loop() {
					if file, err = src.Export(ctx, a.DID, "a long passphrase here", true); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(file)), "bytes")
			})
			b.Run("import", func(b *testing.B) {
				i := 0
				for b.Loop() {
					b.StopTimer()
					dsn := "sqlite:" + filepath.Join(b.TempDir(), fmt.Sprintf("b%d.db", i))
					if target == "postgres" {
						dsn = testpg.DSN(b)
					}
					dst := cloud(b, openDB(b, dsn), "http://127.0.0.1:1/target")
					i++
					b.StartTimer()
					im, err := dst.Import(ctx, file, "a long passphrase here", portable.ImportOptions{})
					if err != nil {
						b.Fatal(err)
					}
					if im.Account.DID != a.DID {
						b.Fatal("imported another DID")
					}
				}
			})
		})
	}
}
