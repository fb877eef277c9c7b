package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// showOnlyKeys are the fields a list leaves out of an account (they need the
// DID resolved); every other field of `user show` is in the list's object
// with the same value.
var showOnlyKeys = map[string]bool{"did_document": true, "did_log_version": true, "dids": true}

// TestUserJSONShape: `user list --json` is a JSON array ([] when empty) of
// the objects `user show` prints, less what needs the DID resolved; `user
// show --json` is `user show`; the admin API lists and shows the very same
// objects, and so does the CLI through it (--url).
func TestUserJSONShape(t *testing.T) {
	t.Parallel()
	l, adm := startAdminLive(t, sqliteEnv(t))
	e := l.env
	if out := e.must(t, "", "user", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("user list --json with no accounts: %q", out)
	}
	e.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--name", "Alice", "--password-stdin")
	e.must(t, "correct horse battery\n", "user", "create", "--username", "bob", "--password-stdin")
	e.must(t, "", "user", "disable", "bob")

	var listed []map[string]any
	if err := json.Unmarshal([]byte(e.must(t, "", "user", "list", "--json")), &listed); err != nil || len(listed) != 2 {
		t.Fatalf("user list --json: %v %v", listed, err)
	}
	for i, handle := range []string{"alice", "bob"} {
		got := listed[i]
		if got["handle"] != handle {
			t.Fatalf("list[%d] is %v, want %s", i, got["handle"], handle)
		}
		var shown map[string]any
		out := e.must(t, "", "user", "show", handle)
		if err := json.Unmarshal([]byte(out), &shown); err != nil {
			t.Fatal(err)
		}
		if withJSON := e.must(t, "", "user", "show", "--json", handle); withJSON != out {
			t.Fatalf("user show --json differs from user show:\n%s\n%s", withJSON, out)
		}
		if shown["did_document"] == nil || shown["dids"] == nil {
			t.Fatalf("user show %s lacks the DID document or DIDs: %v", handle, shown)
		}
		for k, v := range shown {
			if showOnlyKeys[k] {
				if _, ok := got[k]; ok {
					t.Errorf("list has %q", k)
				}
				continue
			}
			if !reflect.DeepEqual(got[k], v) {
				t.Errorf("%s: %q is %v in the list, %v in show", handle, k, got[k], v)
			}
		}
		for k := range got {
			if _, ok := shown[k]; !ok {
				t.Errorf("%s: %q in the list, not in show", handle, k)
			}
		}
		for _, secret := range []string{"password", "password_hash", "pairwise_secret", "did_key_sealed"} {
			if _, ok := got[secret]; ok {
				t.Errorf("%s: the list shows %q", handle, secret)
			}
		}
		// The admin API's show is the CLI's show.
		st, _, _, raw := adminCall(t, "GET", adm+"/admin/v1/accounts/"+handle, testAdminToken, nil)
		var api map[string]any
		if st != 200 || json.Unmarshal(raw, &api) != nil || !reflect.DeepEqual(api, shown) {
			t.Errorf("admin show %s: %d\n%s\nwant\n%s", handle, st, raw, out)
		}
	}
	if listed[1]["status"] != "disabled" || listed[0]["email"] != "alice@example.org" || listed[0]["replica"] != nil {
		t.Fatalf("listed: %v", listed)
	}

	// The admin API's list is the CLI's list.
	st, _, body, _ := adminCall(t, "GET", adm+"/admin/v1/accounts", testAdminToken, nil)
	if st != 200 || !reflect.DeepEqual(body["accounts"], toAny(listed)) {
		t.Fatalf("admin list: %d %v\nwant %v", st, body["accounts"], listed)
	}
	// A change answers the same object.
	st, _, changed, _ := adminCall(t, "POST", adm+"/admin/v1/accounts/bob/enable", testAdminToken, nil)
	if st != 200 || changed["handle"] != "bob" || changed["status"] != "active" || changed["did_method"] != listed[1]["did_method"] {
		t.Fatalf("admin enable: %d %v", st, changed)
	}

	// Through the admin API, the CLI prints what it prints locally.
	remote := env{"COMMONSID_ADMIN_URL": adm, "COMMONSID_ADMIN_TOKEN": testAdminToken}
	local := e.must(t, "", "user", "list", "--json")
	if r := remote.run(t, "", "user", "list", "--json"); r.code != 0 || r.stdout != local {
		t.Fatalf("remote user list --json: %d %s\nwant\n%s\n%s", r.code, r.stdout, local, r.stderr)
	}
	if r := remote.run(t, "", "user", "show", "--json", "alice"); r.code != 0 || r.stdout != e.must(t, "", "user", "show", "alice") {
		t.Fatalf("remote user show: %d %s %s", r.code, r.stdout, r.stderr)
	}

	// Bad use is a usage error, and nothing is printed.
	for _, args := range [][]string{{"user", "list", "--json", "extra"}, {"user", "show", "--json"}, {"user", "show", "--jsn", "alice"}} {
		if r := e.run(t, "", args...); r.code != exitUsage || r.stdout != "" {
			t.Errorf("%v: %d %q", args, r.code, r.stdout)
		}
	}
}

// TestEveryListShowJSON: every list and show command takes --json and
// prints JSON: an array for a list, an object for a show.
func TestEveryListShowJSON(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t)
	e.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	out := e.must(t, "", "client", "create", "--name", "Notes", "--redirect-uri", "https://notes.example/cb")
	var reg struct {
		ClientID string `json:"client_id"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &reg); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args  []string
		array bool
	}{
		{[]string{"user", "list"}, true},
		{[]string{"user", "show", "alice"}, false},
		{[]string{"client", "list"}, true},
		{[]string{"client", "show", reg.ClientID}, false},
		{[]string{"keys", "list"}, true},
		{[]string{"peer", "list"}, true},
		{[]string{"peer", "rejected"}, true},
		{[]string{"feed", "status"}, false},
		{[]string{"version"}, false},
	} {
		r := e.run(t, "", append(c.args, "--json")...)
		if r.code != 0 {
			t.Errorf("%v --json: exit %d %s", c.args, r.code, r.stderr)
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
			t.Errorf("%v --json: not JSON: %v\n%s", c.args, err, r.stdout)
			continue
		}
		if _, isArray := v.([]any); isArray != c.array {
			t.Errorf("%v --json: array %v, want %v:\n%s", c.args, isArray, c.array, r.stdout)
		}
	}
}

func toAny(ms []map[string]any) []any {
	out := make([]any, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}
