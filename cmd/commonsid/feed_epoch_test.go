package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRestoreReason: the data folder's mark reveals a database restored
// behind it, and nothing else.
func TestRestoreReason(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		mark  *feedMark
		epoch string
		head  int64
		known []string
		want  string
	}{
		"no mark":                 {nil, "E1", 5, []string{"E1"}, ""},
		"same epoch, same head":   {&feedMark{Epoch: "E1", Head: 5}, "E1", 5, []string{"E1"}, ""},
		"same epoch, head beyond": {&feedMark{Epoch: "E1", Head: 5}, "E1", 9, []string{"E1"}, ""},
		"same epoch, head below":  {&feedMark{Epoch: "E1", Head: 9}, "E1", 5, []string{"E1"}, "ends at 5, below the 9"},
		"epoch rotated since":     {&feedMark{Epoch: "E1", Head: 9}, "E2", 5, []string{"E1", "E2"}, ""},
		"epoch never known":       {&feedMark{Epoch: "E3", Head: 9}, "E2", 50, []string{"E1", "E2"}, "never had"},
	} {
		t.Run(name, func(t *testing.T) {
			got := restoreReason(tc.mark, tc.epoch, tc.head, tc.known)
			if (got == "") != (tc.want == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("reason %q, want %q", got, tc.want)
			}
		})
	}
}

// TestFeedMarkFile: the mark is written whole and read back; a missing
// mark is none, a damaged one an error.
func TestFeedMarkFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if m, err := readFeedMark(dir); m != nil || err != nil {
		t.Fatalf("missing mark: %+v %v", m, err)
	}
	want := &feedMark{Epoch: "E1", Head: 42, At: time.Now().UTC().Truncate(time.Second)}
	if err := writeFeedMark(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := readFeedMark(dir)
	if err != nil || got.Epoch != want.Epoch || got.Head != want.Head || !got.At.Equal(want.At) {
		t.Fatalf("read back %+v %v", got, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("files left beside the mark: %v", entries)
	}
	if err := os.WriteFile(filepath.Join(dir, feedMarkFile), []byte(`{"epoch":`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readFeedMark(dir); err == nil {
		t.Fatal("a damaged mark was read")
	}
}

// TestFeedNewEpochCommand: a restart without a restore keeps the epoch
// and causes no resync; a restore of the whole data folder (database and
// mark) is invisible to the mark, and feed new-epoch, run before serve,
// makes the peer replay the feed and drop what the backup does not hold.
func TestFeedNewEpochCommand(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("skipped with -short: two clouds and restarts")
	}
	ctx := context.Background()
	a, b := startCloud(t, sqliteEnv(t)), startCloud(t, sqliteEnv(t))
	a.env.must(t, "", "peer", "add", b.base)
	b.env.must(t, "", "peer", "add", a.base)
	dbB := openTestCloud(t, b.live()).db
	status := func() feedStatusJSON {
		t.Helper()
		var st feedStatusJSON
		if err := json.Unmarshal([]byte(a.env.must(t, "", "feed", "status", "--json")), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	const pw = "correct horse battery"
	share := func(user string) string {
		t.Helper()
		did := lastLine(a.env.must(t, pw+"\n", "user", "create", "--username", user, "--password-stdin"))
		br := newFedBrowser(t)
		if p := br.signIn(a.base, user, pw); p.url.Path != "/account" {
			t.Fatalf("sign in %s: %d %s", user, p.status, p.url)
		}
		if st, _, _ := br.api("PUT", a.base+"/account/api/privacy", map[string]any{"subject_mode": "pairwise", "fork_policy": "ask",
			"federation_sharing": "all", "activity_retention_days": 365, "consent_lifetime_days": 0, "claim_policy": map[string]string{}}); st != 200 {
			t.Fatalf("share %s: %d", user, st)
		}
		eventually(t, 5*time.Second, user+" on B", func() bool {
			_, err := dbB.GetAccount(ctx, did)
			return err == nil
		})
		return did
	}
	erin := share("erin")
	first := status()
	if first.Epoch == "" || first.Mark == nil || first.Mark.Epoch != first.Epoch {
		t.Fatalf("feed status after the first start: %+v", first)
	}

	// A restart without a restore: same epoch, no resync.
	a.stop()
	a.start()
	if st := status(); st.Epoch != first.Epoch {
		t.Fatalf("epoch %s after a plain restart, was %s", st.Epoch, first.Epoch)
	}

	// The whole data folder is backed up while A is stopped.
	a.stop()
	backup := filepath.Join(t.TempDir(), "data")
	copyDir(t, a.env["COMMONSID_DATA"], backup)
	a.start()
	dave := share("dave")
	a.stop()
	if err := os.RemoveAll(a.env["COMMONSID_DATA"]); err != nil {
		t.Fatal(err)
	}
	copyDir(t, backup, a.env["COMMONSID_DATA"])
	out := a.env.must(t, "", "feed", "new-epoch")
	if !strings.Contains(out, "every peer replays") || !strings.Contains(out, "was "+first.Epoch) {
		t.Fatalf("feed new-epoch: %s", out)
	}
	second := status()
	if second.Epoch == first.Epoch || second.Mark == nil || second.Mark.Epoch != second.Epoch || len(second.Epochs) != 2 {
		t.Fatalf("feed status after new-epoch: %+v", second)
	}
	a.start()
	if st := status(); st.Epoch != second.Epoch {
		t.Fatalf("serve changed the epoch the operator made: %s, want %s", st.Epoch, second.Epoch)
	}
	eventually(t, 15*time.Second, "B resyncs with A", func() bool {
		pe, err := dbB.PeerEpoch(ctx, a.base)
		return err == nil && pe.Epoch == second.Epoch && pe.Resyncs == 1 && !pe.Resyncing
	})
	if _, err := dbB.GetAccount(ctx, dave); err == nil {
		t.Fatal("an account the restored A does not have is still on B")
	}
	if _, err := dbB.GetAccount(ctx, erin); err != nil {
		t.Fatalf("erin after the resync: %v", err)
	}
	// new-epoch on a folder without a cloud makes none.
	empty := sqliteEnv(t)
	if r := empty.run(t, "", "feed", "new-epoch"); r.code != exitError || !strings.Contains(r.stderr, "no cloud") {
		t.Fatalf("feed new-epoch without a cloud: %+v", r)
	}
	if _, err := os.Stat(empty["COMMONSID_DATA"]); !os.IsNotExist(err) {
		t.Fatalf("feed new-epoch made a data folder: %v", err)
	}
	// An unknown subcommand is a usage error.
	if r := a.env.run(t, "", "feed", "rewind"); r.code != exitUsage || !strings.Contains(r.stderr, "unknown feed command") {
		t.Fatalf("feed rewind: %+v", r)
	}
}

// copyDir copies a flat folder (the data folder) file by file.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
