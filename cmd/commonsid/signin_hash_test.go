package main

import (
	"context"
	"html"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onecommons/commonsid/identity"
)

// TestImportRefusesCostlyPasswordHash: an export whose password hash asks
// for 1 GiB of memory per check (m=1048576) is refused, by the CLI and by
// "Bring my identity", with a message naming the accepted range, and
// nothing is written.
func TestImportRefusesCostlyPasswordHash(t *testing.T) {
	t.Parallel()
	a := startLive(t, sqliteEnv(t))
	b := startLive(t, sqliteEnv(t))
	did := lastLine(a.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--password-stdin"))
	costly := "$argon2id$v=19$m=1048576,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	if err := openTestCloud(t, a).accounts.Store.UpdateAccount(context.Background(), did, func(x *identity.Account) error {
		x.PasswordHash = costly
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "alice.json")
	a.env.must(t, "a long passphrase here\n", "export", "alice", "--out", file, "--passphrase-stdin", "--include-password")
	if d := exportedDocument(t, mustRead(t, file)); d.Account.PasswordHash != costly {
		t.Fatalf("the export carries %q, want the costly hash", d.Account.PasswordHash)
	}

	const want = "the password hash in this export uses argon2id parameters outside what this cloud accepts (memory 7–64 MiB"
	r := b.env.run(t, "a long passphrase here\n", "import", file, "--passphrase-stdin")
	if r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Fatalf("CLI import: exit %d, stderr %q; want a refusal saying %q", r.code, r.stderr, want)
	}
	p := newBrowser(t).importForm(b.base, mustRead(t, file), "a long passphrase here", "")
	if p.status != http.StatusBadRequest || !strings.Contains(html.UnescapeString(p.body), "The password hash in this export uses argon2id parameters outside") {
		t.Fatalf("import page: %d, want 400 with the reason\n%.800s", p.status, p.body)
	}
	if out := b.env.must(t, "", "user", "list"); strings.Contains(out, "alice") {
		t.Fatalf("a refused import wrote an account: %s", out)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
