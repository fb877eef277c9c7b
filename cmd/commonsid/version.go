package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"runtime/debug"
	"strconv"
)

// versionInfo is what `commonsid version --json` prints.
type versionInfo struct {
	Version   string `json:"version"`              // module version, or the -X main.version one
	Module    string `json:"module"`               // module path
	Revision  string `json:"vcs_revision"`         // commit the binary was built from ("" when unknown)
	Time      string `json:"vcs_time,omitempty"`   // commit time, RFC 3339
	Modified  *bool  `json:"vcs_modified"`         // the work tree had changes (null when unknown)
	GoVersion string `json:"go_version"`           // toolchain
	Platform  string `json:"platform,omitempty"`   // GOOS/GOARCH
	Tags      string `json:"build_tags,omitempty"` // -tags
}

// buildVersion reads the version from the build information: the version
// given with -ldflags "-X main.version=…" wins, then the module version
// (a tag, or a pseudo-version built from the commit), else "dev".
func buildVersion(bi *debug.BuildInfo, ldflagsVersion string) versionInfo {
	v := versionInfo{Version: "dev", Module: "github.com/onecommons/commonsid"}
	if bi != nil {
		v.GoVersion = bi.GoVersion
		if bi.Main.Path != "" {
			v.Module = bi.Main.Path
		}
		if mv := bi.Main.Version; mv != "" && mv != "(devel)" {
			v.Version = mv
		}
		var goos, goarch string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.time":
				v.Time = s.Value
			case "vcs.modified":
				if b, err := strconv.ParseBool(s.Value); err == nil {
					v.Modified = &b
				}
			case "GOOS":
				goos = s.Value
			case "GOARCH":
				goarch = s.Value
			case "-tags":
				v.Tags = s.Value
			}
		}
		if goos != "" && goarch != "" {
			v.Platform = goos + "/" + goarch
		}
	}
	if ldflagsVersion != "" && ldflagsVersion != "dev" {
		v.Version = ldflagsVersion
	}
	return v
}

// String is the one-line form: "commonsid VERSION (REVISION[+modified], TIME) GO".
func (v versionInfo) String() string {
	s := "commonsid " + v.Version
	if v.Revision != "" {
		rev := v.Revision
		if v.Modified != nil && *v.Modified {
			rev += "+modified"
		}
		if v.Time != "" {
			rev += ", " + v.Time
		}
		s += " (" + rev + ")"
	}
	if v.GoVersion != "" {
		s += " " + v.GoVersion
	}
	if v.Platform != "" {
		s += " " + v.Platform
	}
	return s
}

func runVersion(_ context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	bi, _ := debug.ReadBuildInfo()
	v := buildVersion(bi, version)
	if *asJSON {
		b, _ := json.MarshalIndent(v, "", "  ")
		fmt.Fprintln(c.stdout, string(b))
		return nil
	}
	fmt.Fprintln(c.stdout, v.String())
	return nil
}
