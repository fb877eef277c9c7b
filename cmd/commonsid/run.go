package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
)

// version may be set at build time with -ldflags "-X main.version=…";
// otherwise `commonsid version` reports the module version from the build
// information (version.go).
var version = "dev"

// exit codes
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// usageError is a mistake in the command line: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// cli carries the streams of one invocation.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	env            func(string) string
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, c *cli, args []string) error
}

func commands() []command {
	return []command{
		{"serve", "run the identity provider", runServe},
		{"migrate", "apply or list database migrations (up, status)", runMigrate},
		{"user", "manage accounts (create, list, show, disable, enable, delete)", runUser},
		{"keys", "manage the cloud's signing keys (list, rotate, retire) and rotate its key-encryption key", runKeys},
		{"client", "manage services (create, list, show, delete)", runClient},
		{"export", "export an account to a signed, encrypted file", runExport},
		{"import", "import an account from an export file; this cloud becomes its home", runImport},
		{"peer", "federate with other clouds (add, list, remove)", runPeer},
		{"commons", "trust clouds through an OpenID Federation trust anchor (join, status, add-member, members)", runCommons},
		{"feed", "this cloud's event feed (status, new-epoch after a restore)", runFeed},
		{"bench", "drive load against a running server and report req/s, p50, p99 and RSS", runBench},
		{"version", "print the version and the build's source revision (--json)", runVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: commonsid [global flags] <command> [flags]")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nGlobal flags, before or after the command: --%s (each takes a value;\n", strings.Join(GlobalFlags, ", --"))
	fmt.Fprintln(w, "the COMMONSID_* variables set their defaults). Run 'commonsid <command> -h' for a command's flags.")
	fmt.Fprintln(w, "\nOn a remote cloud, through its admin API: commonsid --url URL [--admin-token-file F] user|client|peer|keys list|show|...")
	fmt.Fprintln(w, "(or COMMONSID_ADMIN_URL; see docs/operations.md, Admin API).")
}

// hoistGlobalFlags moves the global flags given before the command (the
// shared flags of storageFlags, see GlobalFlags) after it: in front of a
// "--" when there is one, else at the end, where every command parses them.
// Any other flag before the command, a global flag without its value, or
// one given both before and after the command is a usage error.
func hoistGlobalFlags(args []string) ([]string, error) {
	var globals []string
	i := 0
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "-" {
		a := args[i]
		switch a {
		case "-h", "--help", "-help":
			return append([]string{"help"}, args[i+1:]...), nil
		case "--":
			return nil, usagef("a command is expected before %q (run 'commonsid help')", a)
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !slices.Contains(GlobalFlags, name) {
			return nil, usagef("flag %s before the command: only the global flags --%s go there; put the command's own flags after it (run 'commonsid help')", a, strings.Join(GlobalFlags, ", --"))
		}
		globals = append(globals, a)
		i++
		if !hasValue {
			if i == len(args) {
				return nil, usagef("flag %s needs a value", a)
			}
			globals = append(globals, args[i])
			i++
		}
	}
	if len(globals) == 0 {
		return args, nil
	}
	if i == len(args) {
		return nil, usagef("a command is expected after the global flags (run 'commonsid help')")
	}
	cmd, rest := args[i], args[i+1:]
	end := len(rest)
	if j := slices.Index(rest, "--"); j >= 0 {
		end = j
	}
	for _, a := range rest[:end] {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && slices.Contains(GlobalFlags, name) && hasFlag(globals, name) {
			return nil, usagef("flag --%s is given both before and after the command %s", name, cmd)
		}
	}
	out := append([]string{cmd}, rest[:end]...)
	out = append(out, globals...)
	return append(out, rest[end:]...), nil
}

// hasFlag reports whether the flags in args include name.
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if n, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); strings.HasPrefix(a, "-") && n == name {
			return true
		}
	}
	return false
}

// run is the whole CLI; it returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runEnv(ctx, args, stdin, stdout, stderr, os.Getenv)
}

// runEnv is run with the environment given as a lookup function.
func runEnv(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, env: env}
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	if code, ok := runRemote(ctx, c, args); ok { // remote.go: --url, the admin API
		return code
	}
	args, err := hoistGlobalFlags(args)
	if err != nil {
		fmt.Fprintf(stderr, "commonsid: %s\n", err)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "--help":
		usage(stdout)
		return exitOK
	}
	for _, cmd := range commands() {
		if cmd.name != args[0] {
			continue
		}
		err := cmd.run(ctx, c, args[1:])
		switch {
		case err == nil:
			return exitOK
		case errors.Is(err, flag.ErrHelp):
			return exitOK
		}
		fmt.Fprintf(stderr, "commonsid %s: %s\n", cmd.name, oneLine(err))
		var ue *usageError
		if errors.As(err, &ue) {
			return exitUsage
		}
		return exitError
	}
	fmt.Fprintf(stderr, "commonsid: unknown command %q (run 'commonsid help')\n", args[0])
	return exitUsage
}

func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// parseFlags parses with errors returned rather than printed; -h prints the
// flags to stdout.
func (c *cli) parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(c.stdout)
		fmt.Fprintf(c.stdout, "usage of commonsid %s:\n", fs.Name())
		fs.PrintDefaults()
		return err
	}
	if err != nil {
		if strings.HasPrefix(err.Error(), "flag provided but not defined") {
			// A key ID or client ID may start with '-'.
			return usagef("%v (run 'commonsid %s -h'; an argument that starts with '-' goes after '--')", err, fs.Name())
		}
		return usagef("%v (run 'commonsid %s -h')", err, fs.Name())
	}
	return nil
}

func newLogger(cfg *Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.LogFormat
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok && isTerminal(f) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
