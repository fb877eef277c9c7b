package portable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/onecommons/commonsid/did"
)

// MoveType is the type of a move statement.
const MoveType = "commonsid.move/v1"

// Move says that an account moved from one cloud to another. It is signed
// by the account's DID key, so only the person (through their new home)
// can make it.
type Move struct {
	Type string    `json:"type"`
	DID  string    `json:"did"`
	From string    `json:"from"`
	To   string    `json:"to"`
	At   time.Time `json:"at"`
}

// MakeMoveStatement returns a compact JWS of a Move.
func MakeMoveStatement(key *did.Key, from, to string, at time.Time) (string, error) {
	b, err := json.Marshal(Move{Type: MoveType, DID: key.DID, From: from, To: to, At: at.UTC().Truncate(time.Second)})
	if err != nil {
		return "", err
	}
	return did.Sign(key.Private, key.KeyID, b, map[string]any{"typ": "commonsid-move+json"})
}

// ErrBadMove reports a move statement that is not valid for this cloud.
var ErrBadMove = errors.New("invalid move statement")

// VerifyMoveStatement checks the signature (by the DID the statement names)
// and that it moves the account away from the given cloud.
func VerifyMoveStatement(ctx context.Context, r *did.Resolver, statement, from string) (*Move, error) {
	v, err := r.Verify(ctx, strings.TrimSpace(statement))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadMove, err)
	}
	var m Move
	if err := json.Unmarshal(v.Payload, &m); err != nil || m.Type != MoveType {
		return nil, fmt.Errorf("%w: not a %s statement", ErrBadMove, MoveType)
	}
	if m.DID != v.DID {
		return nil, fmt.Errorf("%w: signed by %s but names %s", ErrBadMove, v.DID, m.DID)
	}
	if strings.TrimRight(m.From, "/") != strings.TrimRight(from, "/") {
		return nil, fmt.Errorf("%w: it moves the account from %s, not from this cloud", ErrBadMove, m.From)
	}
	if !strings.HasPrefix(m.To, "https://") && !strings.HasPrefix(m.To, "http://") {
		return nil, fmt.Errorf("%w: the new home %q is not a URL", ErrBadMove, m.To)
	}
	return &m, nil
}
