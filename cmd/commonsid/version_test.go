package main

import (
	"encoding/json"
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"
)

func TestBuildVersion(t *testing.T) {
	t.Parallel()
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.0",
		Main:      debug.Module{Path: "github.com/onecommons/commonsid", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{
			{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "amd64"},
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-11-30T10:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	v := buildVersion(bi, "dev")
	if v.Version != "v1.4.0" || v.Revision != "0123456789abcdef0123456789abcdef01234567" || v.Time != "2026-11-30T10:00:00Z" ||
		v.Modified == nil || !*v.Modified || v.GoVersion != "go1.26.0" || v.Platform != "linux/amd64" {
		t.Fatalf("buildVersion: %+v", v)
	}
	if s := v.String(); s != "commonsid v1.4.0 (0123456789abcdef0123456789abcdef01234567+modified, 2026-11-30T10:00:00Z) go1.26.0 linux/amd64" {
		t.Errorf("String: %q", s)
	}
	// -X main.version wins; a development build without VCS data says so.
	if v := buildVersion(bi, "v2.0.0-rc1"); v.Version != "v2.0.0-rc1" {
		t.Errorf("ldflags version: %+v", v)
	}
	v = buildVersion(&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev")
	if v.Version != "dev" || v.Revision != "" || v.Modified != nil {
		t.Errorf("devel build: %+v", v)
	}
	b, _ := json.Marshal(v)
	if !strings.Contains(string(b), `"vcs_modified":null`) {
		t.Errorf("unknown modified must be null: %s", b)
	}
}

func TestVersionCommand(t *testing.T) {
	t.Parallel()
	r := env{}.run(t, "", "version", "--json")
	if r.code != 0 {
		t.Fatalf("version --json: %+v", r)
	}
	var v versionInfo
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Version == "" || v.GoVersion == "" {
		t.Fatalf("version --json: %v\n%s", err, r.stdout)
	}
	if r := (env{}).run(t, "", "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "commonsid "+v.Version) {
		t.Fatalf("version: %+v", r)
	}
	if r := (env{}).run(t, "", "version", "extra"); r.code != exitUsage {
		t.Fatalf("version extra: %+v", r)
	}
}

// A binary built from the repository carries the commit it was built from.
func TestVersionOfBuiltBinary(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("no git repository to compare with: %v", err)
	}
	// The build stamps the commit unless told not to (GOFLAGS may say
	// -buildvcs=false): the Dockerfile and make build ask for it, and so
	// does the binary the process tests share (binary).
	out, err := exec.Command(binary(t), "version", "--json").Output()
	if err != nil {
		t.Fatalf("version --json: %v", err)
	}
	var v versionInfo
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if v.Revision != strings.TrimSpace(string(head)) || v.Modified == nil || v.Time == "" {
		t.Errorf("version --json of the built binary: %+v, want revision %s", v, head)
	}
	if v.Version == "dev" || v.Version == "" {
		t.Errorf("the built binary reports no module version: %+v", v)
	}
}
