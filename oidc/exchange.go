package oidc

import (
	"context"
	"errors"
	"fmt"

	"github.com/ory/fosite"

	"github.com/onecommons/commonsid/store"
)

// fosite runs a token exchange (a code for tokens, a refresh token for new
// ones) as a transaction: mark the code or refresh token used, store the
// new access token, store the new refresh token, commit. Begun as a store
// transaction, that is five round trips to the database, each waited for.
// Instead the exchange's writes are recorded and handed to the store at
// commit as one ExchangeOAuthRequests, which PostgreSQL does in a single
// statement. Anything else written inside the transaction (fosite's
// handling of a reused refresh token revokes the whole grant) turns it into
// a store transaction, with what was recorded written first; reads inside
// it see the store as it was before the exchange until then.
type exchange struct {
	used   *usedArtefact   // the code or refresh token being exchanged
	create []*OAuthRequest // what the exchange issues
	after  []func()        // run once committed
	tx     context.Context // the store transaction, once one was needed
	done   bool
}

type usedArtefact struct{ kind, hash string }

type exchangeKey struct{}

func exchangeOf(ctx context.Context) *exchange {
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	return x
}

// recording reports whether writes are still being recorded.
func (x *exchange) recording() bool { return x != nil && x.tx == nil && !x.done }

func (s *fositeStore) BeginTX(ctx context.Context) (context.Context, error) {
	if exchangeOf(ctx) != nil {
		return ctx, errors.New("transaction already open")
	}
	return context.WithValue(ctx, exchangeKey{}, &exchange{}), nil
}

// txCtx returns the context a write other than the exchange's own runs
// with: outside an exchange, ctx; inside one, its store transaction, begun
// now (writing what was recorded) if need be.
func (s *fositeStore) txCtx(ctx context.Context) (context.Context, error) {
	x := exchangeOf(ctx)
	if x == nil || x.done {
		return ctx, nil
	}
	if x.tx != nil {
		return x.tx, nil
	}
	tctx, err := s.st.BeginTx(ctx)
	if err != nil {
		return ctx, err
	}
	if x.used != nil {
		if err := s.st.DeactivateOAuthRequest(tctx, x.used.kind, x.used.hash); err != nil {
			s.st.Rollback(tctx)
			return ctx, err
		}
	}
	for _, r := range x.create {
		if err := s.st.CreateOAuthRequest(tctx, r); err != nil {
			s.st.Rollback(tctx)
			return ctx, err
		}
	}
	x.used, x.create, x.tx = nil, nil, tctx
	return tctx, nil
}

// readCtx returns the context a read runs with: the exchange's store
// transaction once there is one.
func readCtx(ctx context.Context) context.Context {
	if x := exchangeOf(ctx); x != nil && x.tx != nil && !x.done {
		return x.tx
	}
	return ctx
}

// deactivate marks an artefact used, recorded when inside an exchange.
func (s *fositeStore) deactivate(ctx context.Context, kind, hash string) error {
	if x := exchangeOf(ctx); x.recording() && x.used == nil {
		x.used = &usedArtefact{kind, hash}
		return nil
	}
	tctx, err := s.txCtx(ctx)
	if err != nil {
		return err
	}
	return s.st.DeactivateOAuthRequest(tctx, kind, hash)
}

// store stores an artefact, recorded when inside an exchange; after runs
// once it is committed.
func (s *fositeStore) store(ctx context.Context, r *OAuthRequest, after func()) error {
	x := exchangeOf(ctx)
	if x.recording() {
		x.create = append(x.create, r)
		if after != nil {
			x.after = append(x.after, after)
		}
		return nil
	}
	tctx, err := s.txCtx(ctx)
	if err != nil {
		return err
	}
	if err := s.st.CreateOAuthRequest(tctx, r); err != nil {
		return err
	}
	if after != nil {
		if x != nil && !x.done {
			x.after = append(x.after, after)
		} else {
			after()
		}
	}
	return nil
}

func (s *fositeStore) Commit(ctx context.Context) error {
	x := exchangeOf(ctx)
	if x == nil || x.done {
		return errors.New("no transaction to commit")
	}
	x.done = true
	var err error
	switch {
	case x.tx != nil:
		err = s.st.Commit(x.tx)
	case x.used != nil:
		err = s.st.ExchangeOAuthRequests(ctx, x.used.kind, x.used.hash, x.create)
		if errors.Is(err, store.ErrNotFound) {
			return s.lostExchange(ctx, x)
		}
	case len(x.create) > 0:
		err = s.st.ExchangeOAuthRequests(ctx, "", "", x.create)
	}
	if err != nil {
		return storeErr(err)
	}
	for _, fn := range x.after {
		fn()
	}
	return nil
}

func (s *fositeStore) Rollback(ctx context.Context) error {
	x := exchangeOf(ctx)
	if x == nil {
		return errors.New("no transaction to roll back")
	}
	if x.done {
		return nil
	}
	x.done = true
	if x.tx != nil {
		return s.st.Rollback(x.tx)
	}
	return nil
}

// errReused is the outcome of an exchange that lost to another use of the
// same code or refresh token; the token endpoint answers it invalid_grant.
var errReused = errors.New("the authorization code or refresh token was used twice")

// lostExchange handles an exchange whose code or refresh token was found
// active when read but was no longer active at commit: another request used
// it in between (or the grant was revoked). The store's exchange is a
// compare-and-set, so exactly one of two concurrent uses wins; the loser is
// a reuse like any other (RFC 6749 §4.1.2, §10.4, RFC 6819 §5.2.2.3): two
// parties hold the same credential, and which of them is the thief cannot
// be told. So the whole grant is revoked, the winner's new access and
// refresh tokens included (they carry the same request id), and the loser
// is answered invalid_grant. If the revocation itself fails, the loser is
// answered 503 so that it is not taken for done.
func (s *fositeStore) lostExchange(ctx context.Context, x *exchange) error {
	requestID := ""
	for _, r := range x.create {
		requestID = r.RequestID
	}
	if requestID == "" {
		return fosite.ErrNotFound
	}
	if err := s.st.RevokeGrant(ctx, requestID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return storeErr(fmt.Errorf("revoke the grant of a reused %s: %w", x.used.kind, err))
	}
	// Wrapped in ErrInactiveToken so that fosite's own handling stays that
	// of a spent token; the token endpoint finds errReused in the chain.
	return fosite.ErrInactiveToken.WithWrap(errReused)
}
