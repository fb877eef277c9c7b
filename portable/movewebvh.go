package portable

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/store"
)

// Importing a did:webvh account moves its DID.
//
// The file's log is only the account's history up to the export: the
// authority is the latest log the commons holds (this cloud's copy and its
// peers', each verified with its witness threshold and rule 2 of
// identity.CheckAuthority, the head by identity.PreferLog; the file's own
// log counts only when no copy is found and it is witnessed). The file's
// log must be a prefix of it. The move entry (identity.AppendMove to this issuer, a fresh
// custodial key, the witness parameter of the members) is signed by:
//
//   - the person's recovery key, when the latest log has person keys: the
//     recovery phrase is then required (ImportOptions.RecoveryPhrase);
//   - otherwise the custodial key in the file, which must still be the
//     first update key of the latest log. A file made before a later move
//     or custodial key change is refused (ErrExportSuperseded), on every
//     cloud, the one the account left included.
//
// The witnesses then sign the entry (CollectWitness, asked one by one in
// the same order on every cloud, so that of two concurrent moves only one
// wins). When they refuse or are too few, nothing is written. Then, in one
// transaction: the account row (keyed by its first DID) with the new
// custodial key sealed, homed here; the new log (a compare-and-swap on the
// copy read here); consents, settings, passkeys and activity as for a
// did:key account; a did.log event, so that every peer learns the move
// (the former home ends the account's sessions there when it does).

// Errors of the import of a did:webvh account.
var (
	ErrExportSuperseded = errors.New("this export was made before the account's latest move or key change")
	ErrNotInHistory     = errors.New("the file's DID log is not part of the account's history")
	ErrNoLatestLog      = errors.New("the account's latest DID log could not be found")
	ErrRecoveryRequired = errors.New("this account has a recovery kit: its recovery phrase is required to move it")
	ErrWrongRecovery    = errors.New("the recovery phrase is not the one of this account's recovery kit")
	ErrMoveNotWitnessed = errors.New("the commons' witnesses did not confirm the move")
	ErrMoveLost         = errors.New("another move or change of this account was confirmed first")
	ErrMoveRace         = errors.New("the account's DID log changed on this cloud during the import: try again")
	ErrNoFederation     = errors.New("this cloud cannot move did:webvh accounts (no federation)")
)

// LogMove is what the import of a did:webvh account did to its log.
type LogMove struct {
	FromHome      string // the home the latest log named
	FileVersion   int    // the version of the log in the file
	LatestVersion int    // the version of the latest log found
	Version       int    // the version of the move entry
	DID           string // the account's DID now, on this cloud
	// Witnesses are the witness ids whose proofs the move entry carries.
	Witnesses []string
	// ByRecoveryKit reports that the move was signed by the person's
	// recovery key (else by the custodial key of the file).
	ByRecoveryKit bool
	// CloudUnverified is why the exporting cloud's signature could not be
	// checked ("" when it was): see Opened.
	CloudUnverified string
}

// latestLog is a verified copy of the account's log.
type latestLog struct {
	log, witness []byte
	res          *webvh.Result
}

// verifyLatest verifies a copy of the log of scid as a head to rely on:
// every rule, the witness threshold met, rule 2.
func (s *Service) verifyLatest(scid string, log, witness []byte) (*latestLog, error) {
	w := witness
	if len(w) == 0 {
		w = []byte("[]")
	}
	res, err := webvh.Verify(log, webvh.Options{Now: s.Now, Witness: func() ([]byte, error) { return w, nil }})
	if err != nil {
		return nil, err
	}
	if res.Metadata.SCID != scid {
		return nil, fmt.Errorf("%w: the log's SCID is %s", webvh.ErrDIDMismatch, res.Metadata.SCID)
	}
	if !res.Metadata.Witnessed {
		return nil, webvh.ErrWitness
	}
	if err := identity.CheckAuthority(res, 0); err != nil {
		return nil, err
	}
	return &latestLog{log: log, witness: witness, res: res}, nil
}

// latest returns the head of the account's log among this cloud's copy
// (local) and the federation's; the file's, witnessed, when there is none.
func (s *Service) latest(ctx context.Context, op *Opened, local *identity.DIDLog) (*latestLog, error) {
	scid := op.Log.Metadata.SCID
	var best *latestLog
	var notes []string
	consider := func(where string, log, witness []byte) {
		c, err := s.verifyLatest(scid, log, witness)
		if err != nil {
			notes = append(notes, where+": "+err.Error())
			return
		}
		if best == nil || identity.PreferLog(c.res, best.res) > 0 {
			best = c
		}
	}
	if local != nil {
		consider("this cloud's copy", local.Log, local.Witness)
	}
	log, witness, err := s.LatestLog(ctx, scid)
	switch {
	case err == nil:
		consider("the commons' copy", log, witness)
	case !errors.Is(err, webvh.ErrNotFound):
		notes = append(notes, "the commons: "+err.Error())
	}
	if best == nil && op.LogWitnessed {
		// Nobody here or among the peers holds the log: the file's own,
		// witnessed, is the latest known. (Only then: the file's branch
		// must not win over a copy the commons holds.)
		consider("the file's log", []byte(op.Document.DIDLog), op.Document.DIDWitness)
	}
	if best == nil {
		msg := "no witnessed copy is held here or by a peer"
		if len(notes) > 0 {
			msg += " (" + strings.Join(notes, "; ") + ")"
		}
		return nil, fmt.Errorf("%w: %s", ErrNoLatestLog, msg)
	}
	return best, nil
}

// importWebVH imports the export of a did:webvh account: see the top of
// this file.
func (s *Service) importWebVH(ctx context.Context, op *Opened, opt ImportOptions) (*Imported, error) {
	if s.LatestLog == nil || s.MemberWitnesses == nil || s.CollectWitness == nil {
		return nil, ErrNoFederation
	}
	doc := op.Document
	fileRes := op.Log
	scid := fileRes.Metadata.SCID
	if err := identity.CheckAuthority(fileRes, 0); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadLog, err)
	}
	accountDID := doc.Account.DID
	local, err := s.Store.GetDIDLogBySCID(ctx, scid)
	switch {
	case errors.Is(err, store.ErrNotFound):
		local = nil
	case err != nil:
		return nil, err
	case local.DID != accountDID:
		return nil, fmt.Errorf("%w: this cloud holds the log of %s for account %s, the file names account %s", ErrBadLog, scid, local.DID, accountDID)
	}
	head, err := s.latest(ctx, op, local)
	if err != nil {
		return nil, err
	}
	latest := head.res
	if !isPrefix(fileRes, latest) {
		return nil, fmt.Errorf("%w: the file's version %d (%s) is not in the latest log of %s (version %d)", ErrNotInHistory,
			fileRes.Metadata.VersionNumber, fileRes.Metadata.VersionID, latest.DID, latest.Metadata.VersionNumber)
	}
	fromHome, _, err := identity.IssuerOfWebVH(latest.DID)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadLog, err)
	}
	if sameIssuer(fromHome, s.Issuer) {
		return nil, fmt.Errorf("%w: its DID log already names this cloud as its home (%s)", ErrAlreadyPresent, latest.DID)
	}
	if latest.Metadata.Deactivated {
		return nil, fmt.Errorf("%w: the account's DID is deactivated", ErrBadLog)
	}

	// Who signs the move.
	var signer ed25519.PrivateKey
	byKit := false
	if persons := identity.PersonKeys(latest); len(persons) > 0 {
		if strings.TrimSpace(opt.RecoveryPhrase) == "" {
			return nil, ErrRecoveryRequired
		}
		priv, err := identity.RecoveryKeyFromPhrase(opt.RecoveryPhrase)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(persons, webvh.Multikey(priv.Public().(ed25519.PublicKey))) {
			return nil, ErrWrongRecovery
		}
		signer, byKit = priv, true
	} else {
		mk := webvh.Multikey(op.DIDKey.Private.Public().(ed25519.PublicKey))
		if len(latest.Metadata.UpdateKeys) == 0 || latest.Metadata.UpdateKeys[0] != mk {
			return nil, fmt.Errorf("%w: this export was made at version %d (%s); the account has changed keys or moved since (version %d, home %s): use a newer export or your recovery kit",
				ErrExportSuperseded, fileRes.Metadata.VersionNumber, fileRes.Metadata.VersionTime.UTC().Format("2006-01-02 15:04 MST"),
				latest.Metadata.VersionNumber, fromHome)
		}
		signer = op.DIDKey.Private
	}

	// What is already here, and the handle, before anything is signed.
	handle := doc.Account.Handle
	if opt.Handle != "" {
		if handle, err = identity.NormalizeHandle(opt.Handle); err != nil {
			return nil, err
		}
	}
	existing, err := s.Store.GetAccount(ctx, accountDID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		existing = nil
	case err != nil:
		return nil, err
	case existing.Status == identity.StatusDeleted:
		return nil, fmt.Errorf("%w: the account was deleted here (%s)", ErrAlreadyPresent, accountDID)
	}
	if existing != nil && opt.Handle == "" && existing.HomeIssuer == s.Issuer {
		handle = existing.Handle
	}
	if other, err := s.Store.GetAccountByHandle(ctx, handle); err == nil && other.DID != accountDID {
		return nil, fmt.Errorf("%w (%s)", ErrHandleTaken, handle)
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}

	// The move entry, witnessed.
	l, err := webvh.Open(head.log, webvh.Options{Now: s.Now})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadLog, err)
	}
	ids, err := s.MemberWitnesses(ctx)
	if err != nil {
		return nil, fmt.Errorf("the commons' witnesses: %w", err)
	}
	now := s.Now().UTC()
	pendingKey := strings.Join([]string{scid, latest.Metadata.VersionID, webvh.Multikey(signer.Public().(ed25519.PublicKey)), s.Issuer}, "|")
	custodial, at, err := pendingMoves.get(pendingKey, now, latest.Metadata.VersionTime)
	if err != nil {
		return nil, err
	}
	custodialPub := custodial.Public().(ed25519.PublicKey)
	moved, err := identity.AppendMove(l, s.Issuer, custodialPub, identity.WitnessConfig(ids), signer, at)
	if err != nil {
		return nil, fmt.Errorf("move the account's DID: %w", err)
	}
	witness, err := s.CollectWitness(ctx, moved.Bytes(), head.witness)
	if err != nil {
		if errors.Is(err, ErrMoveLost) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrMoveNotWitnessed, err)
	}
	res, err := webvh.Verify(moved.Bytes(), webvh.Options{Now: s.Now, Witness: func() ([]byte, error) { return witness, nil }})
	if err == nil && !res.Metadata.Witnessed {
		err = webvh.ErrWitness
	}
	if err == nil {
		err = identity.CheckAuthority(res, latest.Metadata.VersionNumber)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMoveNotWitnessed, err)
	}
	_, name, err := identity.IssuerOfWebVH(res.DID)
	if err != nil {
		return nil, err
	}

	sealedKey, sealedSecret, err := s.Accounts.SealSecrets(&did.Key{DID: accountDID, Private: custodial}, op.PairwiseSecret)
	if err != nil {
		return nil, err
	}
	a := doc.IdentityAccount()
	a.Handle, a.Status, a.HomeIssuer = handle, identity.StatusActive, s.Issuer
	a.DIDKeySealed, a.PairwiseSecretSealed, a.UpdatedAt = sealedKey, sealedSecret, now
	out := &Imported{Account: a, From: fromHome, Log: &LogMove{
		FromHome: fromHome, FileVersion: fileRes.Metadata.VersionNumber, LatestVersion: latest.Metadata.VersionNumber,
		Version: res.Metadata.VersionNumber, DID: res.DID, Witnesses: entryWitnesses(witness, res.Metadata.VersionID),
		ByRecoveryKit: byKit, CloudUnverified: op.CloudUnverified,
	}}
	row := &identity.DIDLog{
		DID: accountDID, SCID: scid, CurrentDID: res.DID, Name: name, HomeIssuer: s.Issuer,
		Log: moved.Bytes(), Witness: witness, Version: res.Metadata.VersionNumber, UpdatedAt: now,
	}
	prev := 0
	if local != nil {
		row.Escrow, prev = local.Escrow, local.Version
	}
	err = s.Store.InTx(ctx, func(ctx context.Context) error {
		// The log and its did.log event first: peers learn the new home
		// and its key before the account's events signed with that key.
		ok, err := s.Store.PutDIDLog(ctx, row, prev)
		if err != nil {
			return err
		}
		if !ok {
			return ErrMoveRace
		}
		if err := s.Store.AppendEvent(ctx, DIDLogEvent, accountDID, now, map[string]any{"scid": scid}); err != nil {
			return err
		}
		if err := s.putAccount(ctx, a, existing, handle); err != nil {
			return err
		}
		return s.writeData(ctx, a, &doc, existing != nil, out, now)
	})
	if err != nil {
		return nil, err
	}
	pendingMoves.done(pendingKey)
	return out, nil
}

// pendingMoves keeps, for a day, the custodial key and versionTime of each
// move entry this process built, by SCID, previous versionId, signer and
// destination, so that an import retried after its witnesses fell short of
// the threshold signs the very same entry: the witnesses that signed the
// first attempt see it again, not a fork that they would refuse for good.
var pendingMoves = &moveCache{m: map[string]pendingMove{}}

type pendingMove struct {
	key  ed25519.PrivateKey
	at   time.Time
	made time.Time
}

type moveCache struct {
	mu sync.Mutex
	m  map[string]pendingMove
}

const (
	pendingMoveTTL = 24 * time.Hour
	maxPendingMove = 1000
)

// get returns the key and time of the pending move k, or makes them: a
// fresh custodial key, and now (after the previous entry's time).
func (c *moveCache) get(k string, now, last time.Time) (ed25519.PrivateKey, time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.m[k]; ok && now.Sub(p.made) < pendingMoveTTL {
		return p.key, p.at, nil
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, time.Time{}, err
	}
	at := now.Truncate(time.Second)
	if !at.After(last) {
		at = last.Add(time.Second) // versionTime must grow; within the clock skew allowed
	}
	if len(c.m) >= maxPendingMove {
		for x, p := range c.m {
			if now.Sub(p.made) >= pendingMoveTTL || len(c.m) >= maxPendingMove {
				delete(c.m, x)
			}
		}
	}
	c.m[k] = pendingMove{key: priv, at: at, made: now}
	return priv, at, nil
}

func (c *moveCache) done(k string) {
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}

// DIDLogEvent is the type of the federation event that carries an
// account's DID log (federation.DIDLogEvent).
const DIDLogEvent = "did.log"

// entryWitnesses returns the witness ids (did:key) with a proof on
// versionID in a did-witness.json.
func entryWitnesses(file []byte, versionID string) []string {
	var records []webvh.WitnessProofs
	if json.Unmarshal(file, &records) != nil {
		return nil
	}
	var out []string
	for _, r := range records {
		if r.VersionID != versionID {
			continue
		}
		for _, raw := range r.Proof {
			var p struct {
				VerificationMethod string `json:"verificationMethod"`
			}
			if json.Unmarshal(raw, &p) == nil {
				if id, _, _ := strings.Cut(p.VerificationMethod, "#"); id != "" && !slices.Contains(out, id) {
					out = append(out, id)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

func sameIssuer(a, b string) bool { return strings.TrimRight(a, "/") == strings.TrimRight(b, "/") }
