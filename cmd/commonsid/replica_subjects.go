package main

// Subjects of replicated accounts. A replica holds no pairwise secret: its
// subs come from its home (federation/subjects.go) and are kept in
// replica_subjects. Replicas made when peers still received the secret are
// upgraded at start: the subs of the sectors of their consents on this
// cloud are computed and kept, then the secret is dropped, so that the
// services they use keep the sub they know. The upgrade is idempotent: a
// replica without a secret is not read again.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/store"
)

// replicaSubjects gives the provider the subs of replicated accounts, with
// the federation's errors as the provider's.
func replicaSubjects(fed *federation.Federation) oidc.ReplicaSubjectFunc {
	return func(ctx context.Context, a *identity.Account, clientID, sector string) (string, error) {
		sub, err := fed.ReplicaSubject(ctx, a, clientID, sector)
		switch {
		case errors.Is(err, federation.ErrHomeUnavailable):
			return "", fmt.Errorf("%w: %v", oidc.ErrSubjectUnavailable, err)
		case errors.Is(err, federation.ErrHomeRefused):
			return "", fmt.Errorf("%w: %v", oidc.ErrSubjectRefused, err)
		}
		return sub, err
	}
}

// upgradeReplicaSecrets keeps the subs of every replica that still holds
// a pairwise secret and drops the secret; it returns how many replicas it
// upgraded. A secret that cannot be opened is left, and logged.
func upgradeReplicaSecrets(ctx context.Context, cl *cloud, log *slog.Logger) (int, error) {
	const batch = 100
	n, after := 0, ""
	for {
		reps, err := cl.db.ReplicasWithSecret(ctx, cl.cfg.Issuer, after, batch)
		if err != nil {
			return n, err
		}
		for _, a := range reps {
			after = a.DID
			secret, err := cl.accounts.PairwiseSecret(a)
			if err != nil {
				log.Warn("a replica's pairwise secret cannot be opened; it is kept", "err", err)
				continue
			}
			if err := keepReplicaSubjects(ctx, cl, a, secret); err != nil {
				return n, fmt.Errorf("upgrade replica subjects: %w", err)
			}
			n++
		}
		if len(reps) < batch {
			return n, nil
		}
	}
}

// keepReplicaSubjects stores, in one transaction, the subs of the sectors
// of a replica's consents on this cloud's services and drops its secret.
func keepReplicaSubjects(ctx context.Context, cl *cloud, a *identity.Account, secret []byte) error {
	consents, err := cl.db.ListConsents(ctx, a.DID)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	return cl.db.InTx(ctx, func(ctx context.Context) error {
		for _, c := range consents {
			if strings.Contains(c.ClientID, "#") {
				continue // a consent at a peer's service, replicated from the home
			}
			sector := c.SubjectSector
			if sector == "" {
				client, err := oidc.LookupClient(ctx, cl.db, c.ClientID)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				sector = client.Sector
			}
			if sector == "" {
				continue
			}
			if err := cl.db.PutReplicaSubject(ctx, a.DID, sector, oidc.PairwiseSubject(secret, sector), now); err != nil {
				return err
			}
		}
		return cl.db.DropReplicaSecret(ctx, a.DID, cl.cfg.Issuer)
	})
}
