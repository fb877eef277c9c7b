// Package store holds the errors shared by every storage implementation.
// The SQL implementation is in store/sqlstore and the conformance suite that
// every implementation passes is in store/storetest.
package store

import (
	"errors"
	"fmt"
)

// Sentinel errors returned by every store. Callers test with errors.Is.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	ErrConflict      = errors.New("conflict")
)

// DuplicateError reports a uniqueness violation on one field. It matches
// ErrAlreadyExists with errors.Is.
type DuplicateError struct {
	Entity string // "account", "signing key", …
	Field  string // "handle", "did", …
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("%s with this %s already exists", e.Entity, e.Field)
}

// Is makes errors.Is(err, ErrAlreadyExists) true.
func (e *DuplicateError) Is(target error) bool { return target == ErrAlreadyExists }
