package identity

import (
	"context"
	"crypto/ed25519"
	"encoding/base32"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/did/webvh"
)

// Accounts with a did:webvh DID.
//
// By default (DIDMethod "" or DIDMethodKey) a new account's DID is the
// did:key of its custodial Ed25519 key. With DIDMethodWebVH the account
// gets
//
//	did:webvh:{SCID}:{issuer host}[%3A{port}][:{issuer path segment}…]:accounts:{name}
//
// where name is 26 random base32 characters chosen at creation (stable:
// it is not the handle, which can be reused after a deletion). The genesis
// entry of its log (did.jsonl) is made with webvh.Create: the update keys
// are the account's custodial key (the same sealed seed as a did:key
// account, bound to the did:webvh DID) and, when the account was made with a
// recovery kit, the kit's key (recovery.go); portable is true, and the
// document lists the custodial key as a Multikey method "{DID}#{multikey}" in authentication and
// assertionMethod, so that the person signatures of the account verify
// with kid = that DID URL. The log is stored with the account, in the same
// transaction (DIDLogStore.CreateAccountWithDIDLog), and its home serves it
// at {issuer}/accounts/{name}/did.jsonl.
//
// did:webvh requires a fully qualified domain name: an issuer on an IP
// address cannot be used. An issuer on the single-label host "localhost"
// (development) is written as "id.localhost" in DIDs; *.localhost names
// always denote this machine (RFC 6761) and resolvers map them to loopback
// over plain http, only when their own guarded client may reach loopback.
//
// A did:webvh account has a single log entry for now: its key is not
// rotated, it has no witnesses, and it is not moved or exported.

// DID methods of new accounts (Service.DIDMethod).
const (
	DIDMethodKey   = "key"
	DIDMethodWebVH = "webvh"
)

// AccountsSegment is the path segment, after the issuer's, under which
// did:webvh account DIDs and their logs live.
const AccountsSegment = "accounts"

// MaxDIDLogName bounds the name of an account's log in a request path.
const MaxDIDLogName = 64

// DIDLog is the did:webvh log of an account this cloud knows: homed here,
// moved away from here, or homed elsewhere and learned from the federation.
type DIDLog struct {
	DID        string // the account's DID (accounts.did: its first DID)
	SCID       string
	CurrentDID string // state.id of the last entry
	Name       string // last path segment of CurrentDID
	HomeIssuer string // the issuer CurrentDID names (IssuerOfWebVH)
	Log        []byte // did.jsonl
	Witness    []byte // did-witness.json; nil when none
	Escrow     []byte // the pairwise secret sealed under the recovery kit; nil when none
	Version    int    // number of the last entry
	UpdatedAt  time.Time
}

// DIDLogStore keeps the did:webvh logs, one per SCID, and every DID each
// account has had.
type DIDLogStore interface {
	// CreateAccountWithDIDLog stores a new account and its log in one
	// transaction, with the account.created and did.log events and the
	// account's DIDs (l.DID, l.CurrentDID).
	CreateAccountWithDIDLog(ctx context.Context, a *Account, l *DIDLog) error
	// GetDIDLog returns the log of an account (by its first DID);
	// store.ErrNotFound if none.
	GetDIDLog(ctx context.Context, accountDID string) (*DIDLog, error)
	// GetDIDLogBySCID returns the log of a SCID; store.ErrNotFound if none.
	GetDIDLogBySCID(ctx context.Context, scid string) (*DIDLog, error)
	// GetDIDLogByName returns the log served under name; store.ErrNotFound
	// if none.
	GetDIDLogByName(ctx context.Context, name string) (*DIDLog, error)
	// PutDIDLog stores l when the stored row of l.SCID is still at prevVersion
	// (0: no row yet, inserted); false, nil when it is not (nothing written).
	// It adds l.DID and l.CurrentDID to account_dids. Works inside InTx.
	PutDIDLog(ctx context.Context, l *DIDLog, prevVersion int) (bool, error)
	// AccountForDID returns the account DID (key) of any DID the account
	// has had; store.ErrNotFound if none.
	AccountForDID(ctx context.Context, anyDID string) (string, error)
	// AccountDIDs returns every DID of the account, oldest first.
	AccountDIDs(ctx context.Context, accountDID string) ([]string, error)
	// ListDIDLogsHomedAt returns the logs whose HomeIssuer is issuer, by
	// SCID after afterSCID, at most limit.
	ListDIDLogsHomedAt(ctx context.Context, issuer, afterSCID string, limit int) ([]*DIDLog, error)
	// ForgetDIDLog removes what this cloud holds of a deleted account's
	// log: its did_logs row, its other DIDs, and the head this cloud
	// witnessed for its SCID. Nothing held is not an error.
	ForgetDIDLog(ctx context.Context, accountDID string) error
}

// ErrWebVHExport refuses the export of a did:webvh account: export files
// carry a did:key account (its key is its DID), and a cloud importing one
// would neither hold nor serve the account's log.
var ErrWebVHExport = errors.New("accounts with a did:webvh DID cannot be exported yet")

// ErrWebVHIssuer reports an issuer that cannot host did:webvh DIDs.
var ErrWebVHIssuer = errors.New("did:webvh account DIDs need an issuer whose host is a DNS name")

// WebVHHostPath returns the part of account DIDs between the SCID and the
// accounts segment for issuer: the host (id.localhost for localhost), a
// %3A-encoded port, and the issuer's path segments.
func WebVHHostPath(issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%w: %q is not an absolute URL", ErrWebVHIssuer, issuer)
	}
	host := strings.ToLower(u.Hostname())
	if net.ParseIP(host) != nil {
		return "", fmt.Errorf("%w: the host of %q is an IP address, which did:webvh forbids", ErrWebVHIssuer, issuer)
	}
	if host == "localhost" {
		host = "id.localhost"
	}
	hp := host
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return "", fmt.Errorf("%w: bad port in %q", ErrWebVHIssuer, issuer)
		}
		// The default ports are implied by https (and plain http on loopback).
		if !(n == 443 && u.Scheme == "https") {
			hp += "%3A" + p
		}
	}
	for _, seg := range strings.Split(strings.Trim(u.Path, "/"), "/") {
		if seg != "" {
			hp += ":" + strings.ReplaceAll(url.PathEscape(seg), ":", "%3A")
		}
	}
	probe := "did:webvh:QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG:" + hp + ":" + AccountsSegment + ":probe"
	if _, err := webvh.ParseDID(probe); err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrWebVHIssuer, issuer, err)
	}
	return hp, nil
}

// CheckDIDMethod reports whether new accounts of the issuer can get DIDs of
// method ("", key or webvh).
func CheckDIDMethod(method, issuer string) error {
	switch method {
	case "", DIDMethodKey:
		return nil
	case DIDMethodWebVH:
		_, err := WebVHHostPath(issuer)
		return err
	}
	return fmt.Errorf("unknown account DID method %q: use key or webvh", method)
}

var nameEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newWebVH makes the genesis log of a new did:webvh account whose custodial
// key is key, and returns the account's signing key under the new DID.
// A non-nil recovery key is a second update key (recovery.go).
func (s *Service) newWebVH(key *did.Key, recovery ed25519.PublicKey) (*did.Key, *DIDLog, error) {
	if s.DIDLogs == nil {
		return nil, nil, errors.New("did:webvh accounts need a store for their logs")
	}
	hp, err := WebVHHostPath(s.Issuer)
	if err != nil {
		return nil, nil, err
	}
	name, err := newLogName()
	if err != nil {
		return nil, nil, err
	}
	now := s.Now().UTC()
	l, err := genesisLog(hp, name, key.Private, recovery, nil, nil, now)
	if err != nil {
		return nil, nil, fmt.Errorf("account DID log: %w", err)
	}
	res := l.Result()
	return webvhKey(res.DID, key.Private), &DIDLog{
		DID: res.DID, SCID: res.Metadata.SCID, CurrentDID: res.DID, Name: name, HomeIssuer: s.Issuer,
		Log: l.Bytes(), Version: res.Metadata.VersionNumber, UpdatedAt: now,
	}, nil
}

// webvhKey is the custodial key of a did:webvh account: kid is the
// verification method its genesis document lists.
func webvhKey(didID string, priv ed25519.PrivateKey) *did.Key {
	return &did.Key{DID: didID, KeyID: didID + "#" + webvh.Multikey(priv.Public().(ed25519.PublicKey)), Private: priv}
}

// IsWebVH reports a did:webvh DID.
func IsWebVH(didID string) bool { return strings.HasPrefix(didID, "did:webvh:") }
