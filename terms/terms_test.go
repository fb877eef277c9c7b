package terms

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

const good = `{"version":1,"keeps":[{"scope":"profile","retention":"session"},{"claim":"email","retention":"P1Y","purpose":"receipts"}],
"forks":{"shares":"claims","claims":["name","email"]},"export":true}`

func TestParseGood(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Keeps) != 2 || c.Keeps[0].Claim != "email" || c.Keeps[1].Scope != "profile" {
		t.Errorf("keeps not normalised (claims first, then scopes): %+v", c.Keeps)
	}
	if !slices.Equal(c.Forks.Claims, []string{"email", "name"}) {
		t.Errorf("fork claims not sorted: %v", c.Forks.Claims)
	}
	want := `{"export":true,"forks":{"claims":["email","name"],"shares":"claims"},"keeps":[{"claim":"email","purpose":"receipts","retention":"P1Y"},{"retention":"session","scope":"profile"}],"version":1}`
	if got := string(c.Canonical()); got != want {
		t.Errorf("canonical\n got %s\nwant %s", got, want)
	}
}

func TestHashStable(t *testing.T) {
	t.Parallel()
	a, _ := Parse([]byte(good))
	reordered := `{ "export": true, "forks": {"claims": ["email", "name"], "shares": "claims"},
	  "keeps": [{"retention": "P1Y", "claim": "email", "purpose": "receipts"}, {"retention": "session", "scope": "profile"}], "version": 1 }`
	b, err := Parse([]byte(reordered))
	if err != nil {
		t.Fatal(err)
	}
	if a.Hash() != b.Hash() || !strings.HasPrefix(a.Hash(), "sha256-") {
		t.Errorf("same commitments, different hashes: %s %s", a.Hash(), b.Hash())
	}
	if HashOf([]byte(reordered)) != a.Hash() || HashOf(nil) != "" || HashOf([]byte("null")) != "" {
		t.Error("HashOf disagrees with Hash")
	}
	changed, _ := Parse([]byte(strings.Replace(good, "P1Y", "P2Y", 1)))
	if changed.Hash() == a.Hash() {
		t.Error("a longer retention keeps the same hash")
	}
	if HashOf([]byte(`{"not":"valid"}`)) == HashOf([]byte(`{"not":"valid2"}`)) {
		t.Error("unparseable stored documents should still hash by their bytes")
	}
}

func TestParseRefused(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ body, want string }{
		"not an object":     {`[]`, "must be a JSON object"},
		"empty":             {`{}`, "version is required"},
		"unknown key":       {`{"version":1,"keeps":[],"forks":{"shares":"none"},"export":true,"sells_data":false}`, "sells_data: unknown key"},
		"nested unknown":    {`{"version":1,"keeps":[{"claim":"email","retention":"P1Y","forever":true}],"forks":{"shares":"none"},"export":true}`, "forever: unknown key"},
		"case variant":      {`{"Version":1,"keeps":[],"forks":{"shares":"none"},"export":true}`, "differs only in case"},
		"duplicate":         {`{"version":1,"version":1,"keeps":[],"forks":{"shares":"none"},"export":true}`, "duplicate key"},
		"version 2":         {`{"version":2,"keeps":[],"forks":{"shares":"none"},"export":true}`, "version 2 is not supported"},
		"no export":         {`{"version":1,"keeps":[],"forks":{"shares":"none"}}`, "export is required"},
		"export false":      {`{"version":1,"keeps":[],"forks":{"shares":"none"},"export":false}`, "export must be true"},
		"no forks":          {`{"version":1,"keeps":[],"export":true}`, "forks is required"},
		"bad shares":        {`{"version":1,"keeps":[],"forks":{"shares":"everything"},"export":true}`, `forks.shares "everything"`},
		"claims no list":    {`{"version":1,"keeps":[],"forks":{"shares":"claims"},"export":true}`, "forks.claims must list"},
		"list without":      {`{"version":1,"keeps":[],"forks":{"shares":"none","claims":["email"]},"export":true}`, "only for shares"},
		"claim and scope":   {`{"version":1,"keeps":[{"claim":"email","scope":"email","retention":"P1Y"}],"forks":{"shares":"none"},"export":true}`, "exactly one"},
		"no retention":      {`{"version":1,"keeps":[{"claim":"email"}],"forks":{"shares":"none"},"export":true}`, "retention is required"},
		"bad retention":     {`{"version":1,"keeps":[{"claim":"email","retention":"forever"}],"forks":{"shares":"none"},"export":true}`, "not an ISO 8601 duration"},
		"zero retention":    {`{"version":1,"keeps":[{"claim":"email","retention":"P0D"}],"forks":{"shares":"none"},"export":true}`, "is zero"},
		"fraction":          {`{"version":1,"keeps":[{"claim":"email","retention":"P1.5Y"}],"forks":{"shares":"none"},"export":true}`, "not an ISO 8601"},
		"bare T":            {`{"version":1,"keeps":[{"claim":"email","retention":"P1YT"}],"forks":{"shares":"none"},"export":true}`, "not an ISO 8601"},
		"twice":             {`{"version":1,"keeps":[{"claim":"email","retention":"P1Y"},{"claim":"email","retention":"P2Y"}],"forks":{"shares":"none"},"export":true}`, "listed twice"},
		"bad claim name":    {`{"version":1,"keeps":[{"claim":"e mail","retention":"P1Y"}],"forks":{"shares":"none"},"export":true}`, "not a claim name"},
		"control purpose":   {`{"version":1,"keeps":[{"claim":"email","retention":"P1Y","purpose":"a\u0000b"}],"forks":{"shares":"none"},"export":true}`, "control characters"},
		"wrong type":        {`{"version":"1","keeps":[],"forks":{"shares":"none"},"export":true}`, "wrong type"},
		"too big":           {`{"version":1,"keeps":[],"forks":{"shares":"none"},"export":true,"x":"` + strings.Repeat("a", MaxSize) + `"}`, "longer than"},
		"trailing garbage":  {`{"version":1,"keeps":[],"forks":{"shares":"none"},"export":true} {}`, "must be a JSON object"},
		"keeps missing too": {`{"version":1,"forks":{"shares":"none"},"export":true}`, "keeps is required"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.body))
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("Parse = %v, want an *Error", err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "commons_commitments") {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte(`{"keeps":[{"claim":"email"}]}`))
	for _, want := range []string{"version is required", "keeps[0].retention is required", "forks is required", "export is required"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	c, _ := Parse([]byte(`{"version":1,"keeps":[{"claim":"email","retention":"P2Y6M","purpose":"receipts"},{"scope":"profile","retention":"session"},
	  {"claim":"x-points","retention":"P1D"}],"forks":{"shares":"claims","claims":["name","email","nickname"]},"export":true}`))
	got := Describe(c, nil)
	want := []string{
		"It keeps your email address for 2 years and 6 months. Why: receipts",
		`It keeps the detail "x-points" for 1 day.`,
		"It keeps your profile (name and handle) only while you are signed in.",
		"Forks of it may receive your email address, your name and your nickname.",
		"You may export all the data it holds about you.",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Describe\n got %q\nwant %q", got, want)
	}
	none, _ := Parse([]byte(`{"version":1,"keeps":[],"forks":{"shares":"pairwise_ids"},"export":true}`))
	if got := Describe(none, &English); got[0] != English.KeepsNothing || got[1] != English.ForksPairwise {
		t.Errorf("Describe(nothing kept) = %q", got)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	full := Service{SourceCodeURI: "https://code.example/app", PolicyURI: "https://app.example/privacy", TOSURI: "https://app.example/tos",
		Commitments: []byte(good)}
	if bad := Check(full); len(bad) != 0 {
		t.Fatalf("a complete service lacks %v", bad)
	}
	bad := Check(Service{})
	for i, field := range []string{"source_code_uri", "policy_uri", "tos_uri", "commons_commitments"} {
		if len(bad) != 4 || !strings.HasPrefix(bad[i], field+" is required") {
			t.Errorf("Check(empty) = %q, want %s required", bad, field)
		}
	}
	plain := full
	plain.SourceCodeURI = "http://code.example/app"
	if bad := Check(plain); len(bad) != 1 || !strings.Contains(bad[0], "https") {
		t.Errorf("http source: %q", bad)
	}
	fork := full
	fork.Fork, fork.ParentSourceCodeURI = true, "https://CODE.example/app.git"
	if bad := Check(fork); len(bad) != 1 || !strings.Contains(bad[0], "commons_fork_reason") {
		t.Errorf("fork with the parent's source: %q", bad)
	}
	fork.ForkReason = "the same code, run by another community"
	if bad := Check(fork); len(bad) != 0 {
		t.Errorf("fork with a reason: %q", bad)
	}
	fork.ForkReason, fork.SourceCodeURI = "", "https://code.example/fork"
	if bad := Check(fork); len(bad) != 0 {
		t.Errorf("fork with its own source: %q", bad)
	}
	broken := full
	broken.Commitments = []byte(`{"version":1}`)
	if bad := Check(broken); len(bad) != 3 || !strings.HasPrefix(bad[0], "commons_commitments.keeps") {
		t.Errorf("bad commitments: %q", bad)
	}
}

func TestParseMode(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Mode{"": Open, "open": Open, "commons": Commons} {
		if m, err := ParseMode(in); err != nil || m != want {
			t.Errorf("ParseMode(%q) = %q, %v", in, m, err)
		}
	}
	if _, err := ParseMode("Commons"); err == nil {
		t.Error("ParseMode accepts a case variant")
	}
}
