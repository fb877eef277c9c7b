package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
	"github.com/onecommons/commonsid/web"
)

const userUsage = "usage: commonsid user create|list|show|disable|enable|delete|rotate-key|upgrade-did|reset-password|access [flags] [handle|DID] | moved --statement FILE"

func runUser(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 {
		return usagef(userUsage)
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "-h", "--help", "help":
		fmt.Fprintln(c.stdout, userUsage)
		return nil
	case "create":
		return userCreate(ctx, c, args)
	case "list":
		return userList(ctx, c, args)
	case "show", "disable", "enable", "delete":
		return userOne(ctx, c, sub, args)
	case "moved":
		return userMoved(ctx, c, args)
	case "rotate-key":
		return userRotateKey(ctx, c, args)
	case "upgrade-did":
		return userUpgradeDID(ctx, c, args)
	case "reset-password":
		return userResetPassword(ctx, c, args)
	case "access":
		return userAccess(ctx, c, args) // access.go
	}
	return usagef("unknown user command %q; %s", sub, userUsage)
}

// openForCommand parses the shared flags plus extra ones, then opens the
// cloud, creating it when the data folder holds none.
func openForCommand(ctx context.Context, c *cli, name string, args []string, extra func(*flag.FlagSet)) (*cloud, *flag.FlagSet, error) {
	return openFor(ctx, c, name, args, extra, false)
}

// openForReading is openForCommand for commands that only look: a data
// folder or database without a cloud is reported (exit 1), not created.
func openForReading(ctx context.Context, c *cli, name string, args []string, extra func(*flag.FlagSet)) (*cloud, *flag.FlagSet, error) {
	return openFor(ctx, c, name, args, extra, true)
}

func openFor(ctx context.Context, c *cli, name string, args []string, extra func(*flag.FlagSet), mustExist bool) (*cloud, *flag.FlagSet, error) {
	cfg := &Config{mustExist: mustExist}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	cfg.storageFlags(fs, c.env)
	if extra != nil {
		extra(fs)
	}
	if err := c.parseFlags(fs, interleave(fs, args)); err != nil {
		return nil, nil, err
	}
	if err := cfg.Validate(false); err != nil {
		return nil, nil, usagef("%v", err)
	}
	cl, err := openCloud(ctx, cfg, newLogger(cfg, c.stderr), true)
	if err != nil {
		return nil, nil, err
	}
	return cl, fs, nil
}

// interleave moves positional arguments after the flags so that both
// "show alice --db X" and "show --db X alice" work; everything after a "--"
// is positional.
func interleave(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil {
			if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
				continue
			}
			if i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		}
	}
	// Positional arguments follow a "--", so that one starting with '-'
	// (a key ID may) is not taken for a flag.
	return append(append(flags, "--"), pos...)
}

func userCreate(ctx context.Context, c *cli, args []string) error {
	var p identity.CreateParams
	var pwStdin, noKit bool
	cfgFlags := func(fs *flag.FlagSet) {
		fs.StringVar(&p.Handle, "username", "", "handle: 3–32 of a-z 0-9 . _ - (required)")
		fs.StringVar(&p.Email, "email", "", "email address")
		fs.StringVar(&p.Name, "name", "", "display name")
		fs.BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of standard input (required)")
		fs.BoolVar(&noKit, "no-recovery-kit", false, "with did:webvh accounts, make no recovery phrase (the log's only update key is the cloud's)")
	}
	// Validate the input before touching the database.
	probe := flag.NewFlagSet("user create", flag.ContinueOnError)
	(&Config{}).storageFlags(probe, c.env)
	cfgFlags(probe)
	if err := c.parseFlags(probe, interleave(probe, args)); err != nil {
		return err
	}
	if probe.NArg() > 0 {
		return usagef("unexpected argument %q", probe.Arg(0))
	}
	if p.Handle == "" {
		return usagef("--username is required")
	}
	if !pwStdin {
		return usagef("--password-stdin is required: pipe the password on standard input")
	}
	pw, err := readPassword(c.stdin)
	if err != nil {
		return err
	}
	p.Password = pw
	if err := p.Validate(); err != nil {
		return err
	}
	cl, _, err := openForCommand(ctx, c, "user create", args, cfgFlags)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.webvhNeedsIssuer(); err != nil {
		return err
	}
	var a *identity.Account
	var kit *identity.RecoveryKit
	if noKit {
		a, err = cl.accounts.Create(ctx, p)
	} else {
		a, kit, err = cl.accounts.CreateWithRecoveryKit(ctx, p)
	}
	if err != nil {
		return err
	}
	if !cl.issuerKnown {
		// The account belongs to this cloud whatever it will be called:
		// the first serve (or command given --issuer) records the issuer
		// and the accounts made before then move under it.
		fmt.Fprintf(c.stderr, "note: this cloud has no recorded issuer yet; %s belongs to the issuer serve records at its first start\n", a.Handle)
	}
	fmt.Fprintf(c.stdout, "created account %s\n", a.Handle)
	if kit != nil {
		// Shown once: the phrase is not stored anywhere.
		fmt.Fprintf(c.stdout, "recovery phrase (shown once and not stored: give it to the person to write down): %s\n", kit.Phrase())
	}
	fmt.Fprintf(c.stdout, "%s\n", a.DID)
	return nil
}

func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, identity.PasswordMax+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from standard input: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on standard input")
	}
	return line, nil
}

func userList(ctx context.Context, c *cli, args []string) error {
	var asJSON bool
	cl, fs, err := openForReading(ctx, c, "user list", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print a JSON array of accounts (the objects of user show, without what needs the DID resolved)")
	})
	if err != nil {
		return err
	}
	defer cl.Close()
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	if !asJSON {
		fmt.Fprintln(tw, "HANDLE\tSTATUS\tCREATED\tDID")
	}
	// The JSON array is written as it is read, a page at a time, so that
	// a large population is listed in constant memory.
	arr := &jsonArray{w: c.stdout}
	for after := ""; ; {
		page, err := listAccounts(ctx, cl, after, 500)
		if err != nil {
			return err
		}
		for _, a := range page {
			if asJSON {
				if err := arr.add(a); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Handle, a.Status, a.CreatedAt.Format("2006-01-02"), a.DID)
			}
		}
		if len(page) < 500 {
			break
		}
		after = page[len(page)-1].Handle
	}
	if asJSON {
		return arr.close()
	}
	return tw.Flush()
}

// jsonArray writes an indented JSON array one element at a time, the way
// printJSON would write the whole slice.
type jsonArray struct {
	w io.Writer
	n int
}

func (j *jsonArray) add(v any) error {
	b, err := json.MarshalIndent(v, "  ", "  ")
	if err != nil {
		return err
	}
	sep := ",\n  "
	if j.n == 0 {
		sep = "[\n  "
	}
	j.n++
	_, err = fmt.Fprintf(j.w, "%s%s", sep, b)
	return err
}

func (j *jsonArray) close() error {
	end := "\n]\n"
	if j.n == 0 {
		end = "[]\n"
	}
	_, err := io.WriteString(j.w, end)
	return err
}

// listAccounts is a page of accounts in the shape of `user list --json`
// and the admin API's list: after the handle after, at most limit.
func listAccounts(ctx context.Context, cl *cloud, after string, limit int) ([]accountJSON, error) {
	page, err := cl.db.ListAccounts(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]accountJSON, 0, len(page))
	for _, a := range page {
		out = append(out, accountSummary(cl, a))
	}
	return out, nil
}

// accountJSON is the one JSON shape of an account: what `user show`
// prints, each element of `user list --json`, and the account objects of
// the admin API (admin_backend.go). No secrets. A list leaves out what
// needs the DID resolved (did_document, did_log_version, dids).
type accountJSON struct {
	DID           string        `json:"did"`
	Handle        string        `json:"handle"`
	Name          string        `json:"name,omitempty"`
	Email         string        `json:"email,omitempty"`
	EmailVerified bool          `json:"email_verified"`
	Status        string        `json:"status"`
	HomeCloud     string        `json:"home_cloud"`
	Replica       bool          `json:"replica,omitempty"`
	HasPassword   bool          `json:"has_password"`
	CreatedAt     time.Time     `json:"created_at"`
	UpdatedAt     time.Time     `json:"updated_at"`
	DeletedAt     *time.Time    `json:"deleted_at,omitempty"`
	DIDDocument   *did.Document `json:"did_document,omitempty"`
	DIDMethod     string        `json:"did_method"`
	DIDLogVersion int           `json:"did_log_version,omitempty"`
	// DIDs are every DID the account has had, oldest first (its key
	// first).
	DIDs []string `json:"dids,omitempty"`
}

// accountSummary is an account as a list shows it.
func accountSummary(cl *cloud, a *identity.Account) accountJSON {
	return accountJSON{
		DID: a.DID, Handle: a.Handle, Name: a.Name, Email: a.Email, EmailVerified: a.EmailVerified,
		Status: a.Status, HomeCloud: a.HomeIssuer, HasPassword: a.PasswordHash != "",
		Replica:   isReplica(cl, a),
		CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt, DeletedAt: a.DeletedAt,
		DIDMethod: didMethod(a.DID),
	}
}

// isReplica reports whether a is a replica of an account homed on a peer.
func isReplica(cl *cloud, a *identity.Account) bool {
	return a.HomeIssuer != cl.cfg.Issuer && a.Status != identity.StatusMoved
}

// accountShown is an account as `user show` and the admin API show it:
// the summary plus its resolved DID document, log version and every DID it
// has had.
func accountShown(ctx context.Context, cl *cloud, a *identity.Account) (accountJSON, error) {
	v := accountSummary(cl, a)
	if a.Status != identity.StatusDeleted {
		doc, version, err := cl.resolveForShow(ctx, a)
		if err != nil {
			return v, fmt.Errorf("resolve %s: %w", a.DID, err)
		}
		v.DIDDocument, v.DIDLogVersion = doc, version
	}
	dids, err := cl.db.AccountDIDs(ctx, a.DID)
	if err != nil {
		return v, err
	}
	if len(dids) == 0 {
		dids = []string{a.DID}
	}
	v.DIDs = dids
	return v, nil
}

// replicaError refuses a change to a replica: only its home changes it.
type replicaError struct{ handle, home string }

func (e *replicaError) Error() string {
	return fmt.Sprintf("%s is a replica of an account homed at %s: replicas are read-only here; make the change there", e.handle, e.home)
}

// changeable refuses a change to a (a replica), as `user disable|enable|
// delete` and the admin API do.
func changeable(cl *cloud, a *identity.Account) error {
	if isReplica(cl, a) {
		return &replicaError{a.Handle, a.HomeIssuer}
	}
	return nil
}

// disableAccount disables a: it signs in nowhere, its sessions end and its
// tokens are revoked (logout tokens queued) in the same transaction.
func disableAccount(ctx context.Context, cl *cloud, a *identity.Account) error {
	queue := cl.endingSignIns(ctx, a.DID)
	return cl.db.InTx(ctx, func(ctx context.Context) error {
		if err := cl.accounts.SetStatus(ctx, a.DID, identity.StatusDisabled); err != nil {
			return err
		}
		if err := queue(ctx); err != nil {
			return err
		}
		if _, err := cl.db.DeleteAllGrantsOf(ctx, a.DID); err != nil {
			return err
		}
		_, err := cl.db.DeleteSessionsOf(ctx, a.DID, "")
		return err
	})
}

// enableAccount makes a active again.
func enableAccount(ctx context.Context, cl *cloud, a *identity.Account) error {
	return cl.accounts.SetStatus(ctx, a.DID, identity.StatusActive)
}

// deleteAccount deletes a: its sign-ins end (logout tokens queued), what
// it shared is forgotten, and the deletion is announced to peers, in one
// transaction.
func deleteAccount(ctx context.Context, cl *cloud, a *identity.Account) error {
	queue := cl.endingSignIns(ctx, a.DID)
	return cl.db.InTx(ctx, func(ctx context.Context) error {
		if err := queue(ctx); err != nil {
			return err
		}
		if err := cl.db.ForgetAccount(ctx, a.DID); err != nil {
			return err
		}
		if err := cl.accounts.Delete(ctx, a.DID); err != nil {
			return err
		}
		return cl.db.AppendEvent(ctx, "account.deleted", a.DID, time.Now().UTC(), map[string]any{"handle": a.Handle})
	})
}

func userOne(ctx context.Context, c *cli, sub string, args []string) error {
	open := openForCommand
	if sub == "show" {
		open = openForReading
	}
	var extra func(*flag.FlagSet)
	if sub == "show" {
		// show prints JSON with or without --json (as client show does).
		extra = func(fs *flag.FlagSet) { fs.Bool("json", false, "print JSON (the default)") }
	}
	cl, fs, err := open(ctx, c, "user "+sub, args, extra)
	if err != nil {
		return err
	}
	defer cl.Close()
	if fs.NArg() != 1 {
		return usagef("usage: commonsid user %s <handle|DID>", sub)
	}
	a, err := findAccount(ctx, cl, fs.Arg(0))
	if err != nil {
		return err
	}
	if sub != "show" {
		if err := changeable(cl, a); err != nil {
			return err
		}
	}
	switch sub {
	case "show":
		v, err := accountShown(ctx, cl, a)
		if err != nil {
			return err
		}
		b, _ := json.MarshalIndent(v, "", "  ")
		fmt.Fprintln(c.stdout, string(b))
		return nil
	case "disable":
		err = disableAccount(ctx, cl, a)
	case "enable":
		err = enableAccount(ctx, cl, a)
	case "delete":
		err = deleteAccount(ctx, cl, a)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%sd account %s\n", strings.TrimSuffix(sub, "e"), a.Handle)
	return nil
}

// findAccount finds the account ref names: a handle, handle@host (a
// replica), the account's DID or any DID it has had (account_dids), or a
// bare handle of a replica when only one home has it.
func findAccount(ctx context.Context, cl *cloud, ref string) (*identity.Account, error) {
	a, err := cl.accounts.Lookup(ctx, ref)
	if isNotFound(err) && strings.HasPrefix(strings.TrimSpace(ref), "did:") {
		// Another DID of the account (an earlier host, or the did:webvh
		// DID of an upgraded did:key account).
		var key string
		if key, err = cl.db.AccountForDID(ctx, strings.TrimSpace(ref)); err == nil {
			a, err = cl.db.GetAccount(ctx, key)
		}
	}
	if isNotFound(err) && !strings.ContainsAny(ref, "@:") {
		// A bare handle may name an account replicated from a peer.
		var rs []*identity.Account
		if rs, err = cl.db.FindReplicas(ctx, strings.ToLower(strings.TrimSpace(ref))); err == nil {
			switch len(rs) {
			case 0:
				err = store.ErrNotFound
			case 1:
				a = rs[0]
			default:
				var names []string
				for _, r := range rs {
					names = append(names, r.Handle)
				}
				return nil, fmt.Errorf("%q names accounts of several home clouds: %s", ref, strings.Join(names, ", "))
			}
		}
	}
	if err != nil {
		if isNotFound(err) {
			if peers, _ := cl.db.ListPeers(ctx); len(peers) > 0 {
				return nil, fmt.Errorf("no account %q here (an account homed on a peer is held here only while its person shares it with federated clouds)", ref)
			}
			return nil, fmt.Errorf("no account %q", ref)
		}
		return nil, err
	}
	return a, nil
}

// ActivityCustodialRotated is the activity kind of a custodial key
// rotation (`user rotate-key`).
const ActivityCustodialRotated = "custodial_key.rotated"

// homedHere finds the account of a command that changes its DID log: it
// must be homed here and active.
func homedHere(ctx context.Context, cl *cloud, ref string) (*identity.Account, error) {
	a, err := findAccount(ctx, cl, ref)
	if err != nil {
		return nil, err
	}
	if a.HomeIssuer != cl.cfg.Issuer || a.Status == identity.StatusMoved {
		return nil, fmt.Errorf("%s is homed at %s: its keys are changed there", a.Handle, a.HomeIssuer)
	}
	if a.Status != identity.StatusActive {
		return nil, fmt.Errorf("%s is %s", a.Handle, a.Status)
	}
	return a, nil
}

// userRotateKey replaces the custodial key of a did:webvh account homed
// here: an entry signed by the current custodial key makes a new key
// updateKeys[0] and the document's verification method (rule 2 lets the
// cloud do that alone); in one transaction the new key is sealed in the
// account row and the log stored, with a did.log event, once the commons'
// witnesses have signed the entry.
func userRotateKey(ctx context.Context, c *cli, args []string) error {
	cl, fs, err := openForCommand(ctx, c, "user rotate-key", args, nil)
	if err != nil {
		return err
	}
	defer cl.Close()
	if fs.NArg() != 1 {
		return usagef("usage: commonsid user rotate-key <handle|DID>")
	}
	a, err := homedHere(ctx, cl, fs.Arg(0))
	if err != nil {
		return err
	}
	row, err := cl.db.GetDIDLog(ctx, a.DID)
	if isNotFound(err) {
		return fmt.Errorf("%s has no did:webvh log: a did:key account's key is its DID and cannot be rotated (upgrade it first: user upgrade-did)", a.Handle)
	}
	if err != nil {
		return err
	}
	if !identity.IsWebVH(a.DID) {
		return fmt.Errorf("%s keeps its did:key as its key: the custodial key of an upgraded did:key account is the did:key's and cannot be rotated", a.Handle)
	}
	key, err := cl.accounts.SigningKey(ctx, a)
	if err != nil {
		return err
	}
	secret, err := cl.accounts.PairwiseSecret(a)
	if err != nil {
		return err
	}
	l, err := webvh.Open(row.Log, webvh.Options{})
	if err != nil {
		return fmt.Errorf("the DID log of %s: %w", a.Handle, err)
	}
	res := l.Result()
	if len(res.Metadata.UpdateKeys) == 0 || res.Metadata.UpdateKeys[0] != webvh.Multikey(key.Private.Public().(ed25519.PublicKey)) {
		return fmt.Errorf("the custodial key sealed for %s is not the custodial key of its DID log (version %d)", a.Handle, res.Metadata.VersionNumber)
	}
	// The new key and the entry's time are derived (from the cloud's KEK,
	// the SCID and the last entry; the time within the hour), so that a
	// rotation retried after its witnesses fell short signs the very same
	// entry: witnesses that signed the first attempt see it again, not a
	// fork. Nobody without the KEK can derive the key.
	seed, err := cl.kek.Derive("commonsid/custodial-rotate/v1|"+row.SCID+"|"+res.Metadata.VersionID, ed25519.SeedSize)
	if err != nil {
		return err
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	now := time.Now().UTC()
	at := now.Truncate(time.Hour)
	if last := res.Metadata.VersionTime; !at.After(last) {
		at = last.Add(time.Second)
	}
	nl, err := identity.AppendCustodialKey(l, pub, key.Private, at)
	if err != nil {
		return fmt.Errorf("rotate the custodial key of %s: %w", a.Handle, err)
	}
	nres := nl.Result()
	// Witnessed before anything is stored: peers take only a witnessed log,
	// and check the account's signatures against the log they hold.
	witness, err := cl.federation().CollectWitness(ctx, nl.Bytes(), row.Witness)
	if err != nil {
		return fmt.Errorf("the witnesses did not sign the new key of %s (nothing changed; try again): %w", a.Handle, err)
	}
	sealedKey, _, err := cl.accounts.SealSecrets(&did.Key{DID: a.DID, Private: priv}, secret)
	if err != nil {
		return err
	}
	next := *row
	next.Log, next.Witness, next.Version, next.CurrentDID, next.UpdatedAt = nl.Bytes(), witness, nres.Metadata.VersionNumber, nres.DID, now
	err = cl.db.InTx(ctx, func(ctx context.Context) error {
		if err := cl.db.UpdateAccount(ctx, a.DID, func(x *identity.Account) error {
			if !bytes.Equal(x.DIDKeySealed, a.DIDKeySealed) {
				return errors.New("the account's key changed meanwhile: try again")
			}
			x.DIDKeySealed, x.UpdatedAt = sealedKey, now
			return nil
		}); err != nil {
			return err
		}
		ok, err := cl.db.PutDIDLog(ctx, &next, row.Version)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("the account's DID log changed meanwhile: try again")
		}
		if err := cl.db.AppendEvent(ctx, federation.DIDLogEvent, a.DID, now, map[string]any{"scid": row.SCID}); err != nil {
			return err
		}
		return cl.db.AppendActivity(ctx, &privacy.Activity{AccountDID: a.DID, At: now, Kind: ActivityCustodialRotated,
			Detail: map[string]any{"version": next.Version}})
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "rotated the custodial key of %s: DID log version %d, key %s, witnessed\n",
		a.Handle, next.Version, webvh.Multikey(pub))
	return nil
}

// userUpgradeDID gives a did:key account homed here a did:webvh DID
// (identity.Service.UpgradeDID): the account keeps its did:key as its key
// (its subs do not change) and the new DID's document lists it in
// alsoKnownAs. With a recovery kit (the default) the phrase is printed
// once and the pairwise secret escrowed under it.
func userUpgradeDID(ctx context.Context, c *cli, args []string) error {
	var noKit bool
	cl, fs, err := openForCommand(ctx, c, "user upgrade-did", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&noKit, "no-recovery-kit", false, "make no recovery phrase (the log's only update key is the cloud's)")
	})
	if err != nil {
		return err
	}
	defer cl.Close()
	if fs.NArg() != 1 {
		return usagef("usage: commonsid user upgrade-did <handle|DID> [--no-recovery-kit]")
	}
	if err := cl.needIssuer("upgrade-did"); err != nil {
		return err
	}
	a, err := homedHere(ctx, cl, fs.Arg(0))
	if err != nil {
		return err
	}
	if identity.IsWebVH(a.DID) {
		return fmt.Errorf("%s already has a did:webvh DID", a.Handle)
	}
	key, err := cl.accounts.SigningKey(ctx, a)
	if err != nil {
		return err
	}
	var kit *identity.RecoveryKit
	var recovery ed25519.PublicKey
	if !noKit {
		if kit, err = identity.NewRecoveryKit(); err != nil {
			return err
		}
		recovery = kit.Public
	}
	l, err := cl.accounts.UpgradeDID(ctx, a, key, recovery, nil)
	if err != nil {
		return err
	}
	if kit != nil {
		secret, err := cl.accounts.PairwiseSecret(a)
		if err != nil {
			return err
		}
		if l.Escrow, err = identity.SealEscrow(kit.Seed(), l.SCID, secret); err != nil {
			return err
		}
	}
	now := time.Now().UTC()
	err = cl.db.InTx(ctx, func(ctx context.Context) error {
		ok, err := cl.db.PutDIDLog(ctx, l, 0)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s already has a did:webvh log", a.Handle)
		}
		if err := cl.db.AppendEvent(ctx, federation.DIDLogEvent, a.DID, now, map[string]any{"scid": l.SCID}); err != nil {
			return err
		}
		return cl.db.AppendActivity(ctx, &privacy.Activity{AccountDID: a.DID, At: now, Kind: web.ActivityUpgraded,
			Detail: map[string]any{"did": l.CurrentDID}})
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "upgraded account %s: its key stays %s\n", a.Handle, a.DID)
	if kit != nil {
		// Shown once: the phrase is not stored anywhere.
		fmt.Fprintf(c.stdout, "recovery phrase (shown once and not stored: give it to the person to write down): %s\n", kit.Phrase())
	}
	fmt.Fprintf(c.stdout, "%s\n", l.CurrentDID)
	return nil
}
