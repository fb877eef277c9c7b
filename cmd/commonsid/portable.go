package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/keys"
	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/portable"
)

// cloudServices answers portable's questions about the services here.
type cloudServices struct{ cl *cloud }

func (s cloudServices) Describe(ctx context.Context, id string) (string, string, bool) {
	c, err := oidc.LookupClient(ctx, s.cl.db, id)
	if err != nil {
		return "", "", false
	}
	return c.Sector, c.FamilySector, true
}

// Match finds the service an exported consent belongs to: the same
// client_id, else the service of the same sector (for a fork, of the same
// family sector).
func (s cloudServices) Match(ctx context.Context, c portable.Consent) (string, bool) {
	if cl, err := oidc.LookupClient(ctx, s.cl.db, c.ClientID); err == nil && cl.Sector == c.Sector {
		return cl.ClientID, true
	}
	all, err := s.cl.db.ListClients(ctx)
	if err != nil {
		return "", false
	}
	for _, sc := range all {
		cl, err := oidc.LookupClient(ctx, s.cl.db, sc.ClientID)
		if err != nil {
			continue
		}
		if c.Sector != "" && cl.Sector == c.Sector && cl.FamilySector == c.FamilySector {
			return cl.ClientID, true
		}
	}
	return "", false
}

func (cl *cloud) portable() *portable.Service {
	fed := cl.federation()
	return &portable.Service{Store: cl.db, Accounts: cl.accounts, Keys: cl.keys, Services: cloudServices{cl},
		Resolver: cl.cfg.Outbound(cl.log).resolver, Issuer: cl.cfg.Issuer, Now: time.Now, Access: cl.db,
		// The import of a did:webvh account moves its DID here, with the
		// federation: its latest log, the members' witnesses.
		LatestLog: func(ctx context.Context, scid string) ([]byte, []byte, error) {
			c, err := fed.LatestDIDLog(ctx, scid)
			if err != nil {
				return nil, nil, err
			}
			return c.Log, c.Witness, nil
		},
		MemberWitnesses: fed.MemberWitnesses,
		CollectWitness: func(ctx context.Context, log, existing []byte) ([]byte, error) {
			w, err := fed.CollectWitness(ctx, log, existing)
			if errors.Is(err, federation.ErrWitnessFork) || errors.Is(err, federation.ErrWitnessStale) {
				// A witness holds another entry at that version: another
				// move (or change) of the account won.
				return nil, fmt.Errorf("%w: %w", portable.ErrMoveLost, err)
			}
			return w, err
		},
	}
}

func runExport(ctx context.Context, c *cli, args []string) error {
	var out string
	var pwStdin, includePassword bool
	cl, fs, err := openForCommand(ctx, c, "export", args, func(fs *flag.FlagSet) {
		fs.StringVar(&out, "out", "", "file to write (required)")
		fs.BoolVar(&pwStdin, "passphrase-stdin", false, "read the passphrase (12 characters or more) from standard input (required)")
		fs.BoolVar(&includePassword, "include-password", false, "include the password hash, so the same password works on the new cloud")
	})
	if err != nil {
		return err
	}
	defer cl.Close()
	if fs.NArg() != 1 || out == "" || !pwStdin {
		return usagef("usage: commonsid export <handle|DID> --out FILE --passphrase-stdin [--include-password]")
	}
	// The file is signed for this cloud's did:web: under a name nobody
	// reaches, no cloud could check it.
	if err := cl.needIssuer("export"); err != nil {
		return err
	}
	if _, err := cl.keys.Ensure(ctx, keys.DefaultAlg); err != nil {
		return err
	}
	pass, err := readPassword(c.stdin)
	if err != nil {
		return err
	}
	a, err := cl.accounts.Lookup(ctx, fs.Arg(0))
	if err != nil {
		if isNotFound(err) {
			return fmt.Errorf("no account %q", fs.Arg(0))
		}
		return err
	}
	file, err := cl.portable().Export(ctx, a.DID, pass, includePassword)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, file, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	fmt.Fprintf(c.stdout, "exported %s (%d bytes) to %s\n%s\n", a.Handle, len(file), out, a.DID)
	return nil
}

func runImport(ctx context.Context, c *cli, args []string) error {
	var handle, moveOut, phraseFile string
	var pwStdin, merge bool
	cl, fs, err := openForCommand(ctx, c, "import", args, func(fs *flag.FlagSet) {
		fs.StringVar(&handle, "handle", "", "a new handle, when the exported one is taken here")
		fs.BoolVar(&pwStdin, "passphrase-stdin", false, "read the export's passphrase from standard input (required)")
		fs.StringVar(&phraseFile, "recovery-phrase-file", "", "for a did:webvh account with a recovery kit: the file holding its recovery phrase (\"-\": the line of standard input after the passphrase; default: $COMMONSID_RECOVERY_PHRASE)")
		fs.StringVar(&moveOut, "move-statement", "", "where to write the move statement for the old cloud (default FILE.move)")
		fs.BoolVar(&merge, "merge", false, "update an account already homed here from a newer export of it")
	})
	if err != nil {
		return err
	}
	defer cl.Close()
	if fs.NArg() != 1 || !pwStdin {
		return usagef("usage: commonsid import FILE --passphrase-stdin [--recovery-phrase-file F] [--handle NEW] [--merge]")
	}
	// The account is homed here and the move statement names this cloud
	// as the new home: that name must be the one people reach.
	if err := cl.needIssuer("import"); err != nil {
		return err
	}
	path := fs.Arg(0)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, cause(err))
	}
	file, err := io.ReadAll(io.LimitReader(f, portable.DefaultMaxSize+1))
	f.Close()
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	// With --recovery-phrase-file -, standard input holds the passphrase
	// line, then the phrase.
	stdin := bufio.NewReaderSize(io.LimitReader(c.stdin, identity.PasswordMax+identity.MaxRecoveryPhrase+4), 4096)
	pass, err := readPassword(strings.NewReader(readLine(stdin)))
	if err != nil {
		return err
	}
	phrase, err := readRecoveryPhrase(c, stdin, phraseFile)
	if err != nil {
		return err
	}
	im, err := cl.portable().Import(ctx, file, pass, portable.ImportOptions{Handle: handle, Merge: merge, RecoveryPhrase: phrase})
	if err != nil {
		return importError(err)
	}
	if m := im.Log; m != nil {
		// A did:webvh account: its log now names this cloud, witnessed;
		// the former home learns it from the federation.
		how := "the custodial key of the export"
		if m.ByRecoveryKit {
			how = "the recovery kit"
		}
		fmt.Fprintf(c.stdout, "imported %s: moved from %s to this cloud (DID log version %d, signed with %s, witnessed by %d of the commons)\n",
			im.Account.Handle, m.FromHome, m.Version, how, len(m.Witnesses))
		if m.CloudUnverified != "" {
			fmt.Fprintf(c.stdout, "note: %s; the file was accepted on the account's own signature and DID log\n", m.CloudUnverified)
		}
		fmt.Fprintf(c.stdout, "%d consents kept, %d for services not registered here\n", len(im.ConsentsKept), len(im.ConsentsDropped))
		fmt.Fprintln(c.stdout, m.DID)
		fmt.Fprintln(c.stdout, im.Account.DID)
		return nil
	}
	if moveOut == "" {
		moveOut = path + ".move"
	}
	if err := os.WriteFile(moveOut, []byte(im.MoveStatement+"\n"), 0o600); err != nil {
		return fmt.Errorf("write the move statement: %w", err)
	}
	fmt.Fprintf(c.stdout, "imported %s from %s: %d consents kept, %d for services not registered here\n",
		im.Account.Handle, im.From, len(im.ConsentsKept), len(im.ConsentsDropped))
	fmt.Fprintf(c.stdout, "move statement for %s written to %s (give it to: commonsid user moved --statement FILE)\n", im.From, moveOut)
	fmt.Fprintln(c.stdout, im.Account.DID)
	return nil
}

// readLine reads one line (with its newline) from r.
func readLine(r *bufio.Reader) string {
	line, _ := r.ReadString('\n')
	return line
}

// readRecoveryPhrase reads the recovery phrase of an import: from the file
// named, from the next line of standard input ("-"), or from
// COMMONSID_RECOVERY_PHRASE; "" when none is given.
func readRecoveryPhrase(c *cli, stdin *bufio.Reader, file string) (string, error) {
	var raw []byte
	switch file {
	case "":
		if c.env != nil {
			return c.env("COMMONSID_RECOVERY_PHRASE"), nil
		}
		return "", nil
	case "-":
		line, err := stdin.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read the recovery phrase from standard input: %w", err)
		}
		raw = []byte(line)
	default:
		f, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("open %s: %w", file, cause(err))
		}
		raw, err = io.ReadAll(io.LimitReader(f, identity.MaxRecoveryPhrase+1))
		f.Close()
		if err != nil {
			return "", fmt.Errorf("read %s: %w", file, err)
		}
	}
	if len(raw) > identity.MaxRecoveryPhrase {
		return "", fmt.Errorf("%w: it is too long", identity.ErrRecoveryPhrase)
	}
	phrase := strings.TrimSpace(string(raw))
	if phrase == "" {
		return "", errors.New("no recovery phrase in " + file)
	}
	return phrase, nil
}

// importError turns the checks' errors into one clear sentence each.
func importError(err error) error {
	if msg := portable.Explain(err); msg != "" {
		return fmt.Errorf("%s (%v)", msg, err)
	}
	return err
}

// userMoved records, from a move statement, that an account now lives on
// another cloud: its tokens and sessions here are revoked and a login shows
// where it went. It is for did:key accounts, and for a cloud cut off from
// the federation: a did:webvh account's move is in its DID log, which every
// peer learns (the former home then does the same by itself).
func userMoved(ctx context.Context, c *cli, args []string) error {
	var statement string
	cl, fs, err := openForCommand(ctx, c, "user moved", args, func(fs *flag.FlagSet) {
		fs.StringVar(&statement, "statement", "", "the move statement the new cloud wrote at import (required)")
	})
	if err != nil {
		return err
	}
	defer cl.Close()
	if statement == "" || fs.NArg() > 0 {
		return usagef("usage: commonsid user moved --statement FILE")
	}
	raw, err := os.ReadFile(statement)
	if err != nil {
		return fmt.Errorf("read %s: %w", statement, cause(err))
	}
	m, err := portable.VerifyMoveStatement(ctx, &did.Resolver{}, string(raw), cl.cfg.Issuer)
	if err != nil {
		return err
	}
	a, err := cl.db.GetAccount(ctx, m.DID)
	if err != nil {
		if isNotFound(err) {
			return fmt.Errorf("no account %s on this cloud", m.DID)
		}
		return err
	}
	err = cl.db.InTx(ctx, func(ctx context.Context) error {
		if err := cl.db.ForgetAccount(ctx, a.DID); err != nil {
			return err
		}
		if err := cl.accounts.MarkMoved(ctx, a.DID, m.To); err != nil {
			return err
		}
		return cl.db.AppendEvent(ctx, "account.moved", a.DID, time.Now().UTC(), map[string]any{"to": m.To, "statement": strings.TrimSpace(string(raw))})
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "account %s moved to %s: its tokens and sessions here are revoked\n", a.Handle, m.To)
	return nil
}
