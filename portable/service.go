package portable

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/onecommons/commonsid/access"
	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/keys"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

// Store is what exporting and importing need from storage.
type Store interface {
	identity.Store
	identity.DIDLogStore
	privacy.Store
	// AppendEvent appends a federation event; inside InTx, in the same
	// transaction.
	AppendEvent(ctx context.Context, typ, accountDID string, at time.Time, payload map[string]any) error
	PutPasskeyUser(ctx context.Context, accountDID string, handle []byte) ([]byte, error)
	GetPasskeyUserHandle(ctx context.Context, accountDID string) ([]byte, error)
	CreatePasskey(ctx context.Context, p *identity.Passkey) error
	ListPasskeys(ctx context.Context, accountDID string) ([]*identity.Passkey, error)
}

// Services tells what this cloud knows about services, to key consents on
// export and to match them on import.
type Services interface {
	// Describe returns a client's pairwise sector and, for a fork, its
	// family's sector.
	Describe(ctx context.Context, clientID string) (sector, familySector string, ok bool)
	// Match finds the service here that an exported consent belongs to: the
	// same client_id, else one of the same family sector or sector.
	Match(ctx context.Context, c Consent) (clientID string, ok bool)
}

// Service exports and imports accounts of this cloud.
type Service struct {
	Store    Store
	Accounts *identity.Service
	Keys     *keys.Manager
	Services Services
	Resolver *did.Resolver
	Issuer   string
	Now      func() time.Time
	// PBES2Count overrides the passphrase iteration count (tests only lower
	// it where the package allows).
	PBES2Count int
	// Access keeps contribution grants (access.go); nil: exports carry
	// none and imports drop the one they carry.
	Access access.Store

	// The federation, for imports of did:webvh accounts (movewebvh.go);
	// without them such an import is refused.
	//
	// LatestLog returns the latest log (and its did-witness.json) of the
	// DID whose SCID is scid that the commons holds: this cloud's copy and
	// its peers', the head by identity.PreferLog; an error wrapping
	// webvh.ErrNotFound when no copy verifies.
	LatestLog func(ctx context.Context, scid string) (log, witness []byte, err error)
	// MemberWitnesses returns the witness ids (did:key) of the members of
	// the commons, this cloud's included.
	MemberWitnesses func(ctx context.Context) ([]string, error)
	// CollectWitness collects the witness proofs the entries of log not yet
	// witnessed need (existing: the did-witness.json so far) and returns
	// the new did-witness.json.
	CollectWitness func(ctx context.Context, log, existing []byte) ([]byte, error)
}

// ErrNotHome reports an account this cloud is not home to.
var ErrNotHome = errors.New("this cloud is not the account's home")

// Export builds the export file of an account.
func (s *Service) Export(ctx context.Context, accountDID, passphrase string, includePassword bool) ([]byte, error) {
	a, err := s.Store.GetAccount(ctx, accountDID)
	if err != nil {
		return nil, err
	}
	if a.Status != identity.StatusActive && a.Status != identity.StatusDisabled {
		return nil, fmt.Errorf("%w: account %s is %s", ErrNotHome, a.Handle, a.Status)
	}
	key, err := s.Accounts.SigningKey(ctx, a)
	if err != nil {
		return nil, err
	}
	// A did:webvh account (or a did:key account given a did:webvh DID)
	// exports its log, and signs under the log's current DID.
	didLog, err := s.Store.GetDIDLog(ctx, a.DID)
	switch {
	case errors.Is(err, store.ErrNotFound) && !identity.IsWebVH(a.DID):
		didLog = nil // a did:key account
	case errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("account %s has a did:webvh DID and no log here", a.Handle)
	case err != nil:
		return nil, err
	}
	if didLog != nil {
		if key, err = s.logKey(a, didLog, key); err != nil {
			return nil, err
		}
	}
	secret, err := s.Accounts.PairwiseSecret(a)
	if err != nil {
		return nil, err
	}
	settings, err := s.Store.GetSettings(ctx, a.DID)
	if errors.Is(err, store.ErrNotFound) {
		settings, err = privacy.DefaultSettings(), nil
	}
	if err != nil {
		return nil, err
	}
	consents, err := s.Store.ListConsents(ctx, a.DID)
	if err != nil {
		return nil, err
	}
	var records []ConsentRecord
	for _, c := range consents {
		r := ConsentRecord{Consent: *c, Issuer: s.Issuer}
		r.Sector, r.FamilySector, _ = s.Services.Describe(ctx, c.ClientID)
		records = append(records, r)
	}
	pks, err := s.Store.ListPasskeys(ctx, a.DID)
	if err != nil {
		return nil, err
	}
	var passkeys []identity.Passkey
	for _, p := range pks {
		passkeys = append(passkeys, *p)
	}
	handle, err := s.Store.GetPasskeyUserHandle(ctx, a.DID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	var activity []*privacy.Activity
	for before := int64(0); ; {
		page, err := s.Store.ListActivity(ctx, a.DID, before, 1000)
		if err != nil {
			return nil, err
		}
		activity = append(activity, page...)
		if len(page) < 1000 {
			break
		}
		before = page[len(page)-1].ID
	}
	// Oldest first in the file, as the log was written.
	for i, j := 0, len(activity)-1; i < j; i, j = i+1, j-1 {
		activity[i], activity[j] = activity[j], activity[i]
	}
	signer, err := s.Keys.Active(ctx, keys.DefaultAlg)
	if err != nil {
		return nil, err
	}
	cloudDID, err := did.WebDID(s.Issuer)
	if err != nil {
		return nil, err
	}
	grant, err := s.accessOf(ctx, a.DID)
	if err != nil {
		return nil, err
	}
	in := Input{
		Access:  grant,
		Account: a, DIDKey: key, PairwiseSecret: secret, Settings: settings, Consents: records,
		Passkeys: passkeys, PasskeyUserHandle: handle, Activity: activity, IncludePassword: includePassword,
		Passphrase: passphrase, Issuer: s.Issuer, CloudKeyID: cloudDID + "#" + signer.KID, CloudKey: signer.Key,
		Now: s.Now(), PBES2Count: s.PBES2Count,
	}
	if didLog != nil {
		in.DIDLog, in.DIDWitness = didLog.Log, didLog.Witness
	}
	file, err := Export(in)
	if err != nil {
		return nil, err
	}
	err = s.Store.AppendActivity(ctx, &privacy.Activity{AccountDID: a.DID, At: s.Now().UTC(), Kind: "exported",
		Detail: map[string]any{"password_included": includePassword, "bytes": len(file)}})
	return file, err
}

// logKey returns the custodial key of a did:webvh account under its log's
// current DID, with the kid of its verification method there. A log that
// names another home, or whose first update key is not the custodial key
// held here, cannot be exported from here.
func (s *Service) logKey(a *identity.Account, l *identity.DIDLog, key *did.Key) (*did.Key, error) {
	res, err := webvh.Verify(l.Log, webvh.Options{Witness: witnessFile(l.Witness), Now: s.Now})
	if errors.Is(err, webvh.ErrWitness) {
		var lg *webvh.Log
		if lg, err = webvh.Open(l.Log, webvh.Options{Now: s.Now}); err == nil {
			res = lg.Result()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("account %s: its DID log: %w", a.Handle, err)
	}
	if home, _, err := identity.IssuerOfWebVH(res.DID); err != nil || strings.TrimRight(home, "/") != strings.TrimRight(s.Issuer, "/") {
		return nil, fmt.Errorf("%w: account %s: its DID log names %s as its home", ErrNotHome, a.Handle, res.DID)
	}
	pub := key.Private.Public().(ed25519.PublicKey)
	mk := webvh.Multikey(pub)
	if len(res.Metadata.UpdateKeys) == 0 || res.Metadata.UpdateKeys[0] != mk {
		return nil, fmt.Errorf("%w: account %s: the custodial key here is not the first update key of its DID log", ErrNotHome, a.Handle)
	}
	doc, err := did.WebVHDocument(res)
	if err != nil {
		return nil, err
	}
	for _, vm := range doc.VerificationMethod {
		if k, err := doc.PublicKey(vm.ID); err == nil {
			if ek, ok := k.(ed25519.PublicKey); ok && ek.Equal(pub) {
				return &did.Key{DID: res.DID, KeyID: vm.ID, Private: key.Private}, nil
			}
		}
	}
	return nil, fmt.Errorf("account %s: the custodial key is not a verification method of %s", a.Handle, res.DID)
}

// witnessFile is the Witness option of a stored witness file (nil: none).
func witnessFile(w []byte) func() ([]byte, error) {
	if len(w) == 0 {
		return nil
	}
	return func() ([]byte, error) { return w, nil }
}

// Errors of an import beyond those of Open.
var (
	ErrAlreadyPresent = errors.New("this account is already on this cloud")
	ErrHandleTaken    = errors.New("the handle is taken on this cloud: choose another with --handle")
)

// Imported is the result of an import.
type Imported struct {
	Account         *identity.Account
	From            string   // the cloud the file came from
	ConsentsKept    []string // client_ids here
	ConsentsDropped []string // exported client_ids with no matching service here
	// MoveStatement is, for a did:key account, the statement signed by
	// the account DID key for the old cloud (`commonsid user moved`).
	MoveStatement string
	// Log is, for a did:webvh account, what the import did to its log.
	Log *LogMove
}

// ImportOptions change how an import treats what is already here.
type ImportOptions struct {
	// Handle replaces the exported handle (when it is taken here).
	Handle string
	// Merge updates an account already homed here from a newer export of
	// it; without it such an import is refused. It applies to did:key
	// accounts: a did:webvh account homed here is refused (its log
	// already names this cloud).
	Merge bool
	// RecoveryPhrase is the person's recovery phrase. The move of a
	// did:webvh account whose log has person keys (a recovery kit) is
	// signed by the kit's key, and cannot be made without it.
	RecoveryPhrase string
}

// ErrOlderExport reports an export older than the account here: a replayed
// file would undo later changes.
var ErrOlderExport = errors.New("the file is older than the account on this cloud")

// Import verifies an export file and, in one transaction, makes this cloud
// the account's home. An account that moved away from here and comes back
// takes its place again; one homed here is updated only with Merge and a
// newer file. Nothing is written when any check fails.
func (s *Service) Import(ctx context.Context, file []byte, passphrase string, opt ImportOptions) (*Imported, error) {
	newHandle := opt.Handle
	op, err := Open(ctx, file, passphrase, VerifyOptions{Resolver: s.Resolver})
	if err != nil {
		return nil, err
	}
	doc := op.Document
	if h := doc.Account.PasswordHash; h != "" {
		// Checking a password costs what its hash says: a hash this
		// cloud would not make or check is refused here, not at sign-in.
		if err := identity.CheckPasswordHash(h); err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
	}
	if op.Log != nil {
		return s.importWebVH(ctx, op, opt)
	}
	if strings.TrimRight(doc.Issuer, "/") == strings.TrimRight(s.Issuer, "/") {
		return nil, fmt.Errorf("%w: the file was exported by this cloud", ErrAlreadyPresent)
	}
	handle := doc.Account.Handle
	if newHandle != "" {
		if handle, err = identity.NormalizeHandle(newHandle); err != nil {
			return nil, err
		}
	}
	existing, err := s.Store.GetAccount(ctx, doc.Account.DID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		existing = nil
	case err != nil:
		return nil, err
	case existing.Status == identity.StatusMoved:
		// Coming back: the pointer left here is replaced.
	case existing.HomeIssuer != s.Issuer:
		// A replica of the account (federation): this cloud becomes its
		// home.
	case existing.Status == identity.StatusDeleted:
		return nil, fmt.Errorf("%w: the account was deleted here (%s)", ErrAlreadyPresent, doc.Account.DID)
	case !opt.Merge:
		return nil, fmt.Errorf("%w (%s); to update it from a newer export, merge", ErrAlreadyPresent, doc.Account.DID)
	case !doc.ExportedAt.After(existing.UpdatedAt):
		return nil, fmt.Errorf("%w: exported %s, changed here %s", ErrOlderExport,
			doc.ExportedAt.Format(time.RFC3339), existing.UpdatedAt.Format(time.RFC3339))
	}
	if existing != nil && newHandle == "" && existing.HomeIssuer == s.Issuer {
		handle = existing.Handle
	}
	if other, err := s.Store.GetAccountByHandle(ctx, handle); err == nil && other.DID != doc.Account.DID {
		return nil, fmt.Errorf("%w (%s)", ErrHandleTaken, handle)
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	sealedKey, sealedSecret, err := s.Accounts.SealSecrets(op.DIDKey, op.PairwiseSecret)
	if err != nil {
		return nil, err
	}
	now := s.Now().UTC()
	a := doc.IdentityAccount()
	a.Handle, a.Status, a.HomeIssuer = handle, identity.StatusActive, s.Issuer
	a.DIDKeySealed, a.PairwiseSecretSealed, a.UpdatedAt = sealedKey, sealedSecret, now
	out := &Imported{Account: a, From: doc.Issuer}
	err = s.Store.InTx(ctx, func(ctx context.Context) error {
		if err := s.putAccount(ctx, a, existing, handle); err != nil {
			return err
		}
		return s.writeData(ctx, a, &doc, existing != nil, out, now)
	})
	if err != nil {
		return nil, err
	}
	out.MoveStatement, err = MakeMoveStatement(op.DIDKey, doc.Issuer, s.Issuer, now)
	return out, err
}

// putAccount stores the imported account: a new row, or the one already
// here (a replica, a moved account coming back, a merge) replaced, its
// creation time kept.
func (s *Service) putAccount(ctx context.Context, a, existing *identity.Account, handle string) error {
	var err error
	if existing == nil {
		err = s.Store.CreateAccount(ctx, a)
	} else {
		err = s.Store.UpdateAccount(ctx, a.DID, func(x *identity.Account) error {
			created := x.CreatedAt
			*x = *a
			x.CreatedAt = created
			if x.PasswordHash == "" && existing.Status != identity.StatusMoved {
				x.PasswordHash = existing.PasswordHash // not in the file: keep the one here
			}
			return nil
		})
	}
	if err != nil {
		var dup *store.DuplicateError
		if errors.As(err, &dup) && dup.Field == "handle" {
			return fmt.Errorf("%w (%s)", ErrHandleTaken, handle)
		}
		return err
	}
	return nil
}

// writeData writes what the file carries besides the account row:
// settings, consents (matched to the services here), passkeys and the
// activity log, then the "imported" activity entry. Run inside InTx.
func (s *Service) writeData(ctx context.Context, a *identity.Account, doc *Document, existing bool, out *Imported, now time.Time) error {
	var since time.Time // activity already here is not written twice
	if existing {
		if last, err := s.Store.ListActivity(ctx, a.DID, 0, 1); err == nil && len(last) == 1 {
			since = last[0].At
		}
	}
	if doc.PrivacySettings != nil {
		if err := s.Store.PutSettings(ctx, a.DID, doc.PrivacySettings, now); err != nil {
			return err
		}
	}
	if err := s.importAccess(ctx, a.DID, doc.Access); err != nil {
		return err
	}
	for _, c := range doc.Consents {
		clientID, ok := s.Services.Match(ctx, c)
		if !ok {
			out.ConsentsDropped = append(out.ConsentsDropped, c.ClientID)
			continue
		}
		pc := &privacy.Consent{AccountDID: a.DID, ClientID: clientID, Scopes: c.Scopes, Claims: c.Claims,
			SubjectSector: c.SubjectSector, GrantedAt: c.GrantedAt, UpdatedAt: c.UpdatedAt, ExpiresAt: c.ExpiresAt}
		if err := s.Store.PutConsent(ctx, pc); err != nil {
			return err
		}
		out.ConsentsKept = append(out.ConsentsKept, clientID)
	}
	if len(doc.PasskeyUserHandle) > 0 {
		if _, err := s.Store.PutPasskeyUser(ctx, a.DID, doc.PasskeyUserHandle); err != nil {
			return err
		}
		for _, p := range doc.IdentityPasskeys() {
			p.AccountDID = a.DID
			if err := s.Store.CreatePasskey(ctx, &p); err != nil {
				if existing && errors.Is(err, store.ErrAlreadyExists) {
					continue // already here
				}
				return err
			}
		}
	}
	for _, e := range doc.PrivacyActivity() {
		if !e.At.After(since) {
			continue
		}
		e.AccountDID = a.DID
		if err := s.Store.AppendActivity(ctx, e); err != nil {
			return err
		}
	}
	detail := map[string]any{"from": doc.Issuer, "exported_at": doc.ExportedAt.Format(time.RFC3339), "merged": existing,
		"consents_kept": len(out.ConsentsKept), "consents_dropped": len(out.ConsentsDropped)}
	if m := out.Log; m != nil {
		detail["from_home"], detail["did_log_version"], detail["witnesses"] = m.FromHome, m.Version, len(m.Witnesses)
	}
	return s.Store.AppendActivity(ctx, &privacy.Activity{AccountDID: a.DID, At: now, Kind: ActivityImported, Detail: detail})
}
