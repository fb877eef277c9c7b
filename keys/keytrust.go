package keys

import (
	"context"
	"fmt"
)

// PublishedSigners returns a signer for every published key (active and
// rotated-out, not retired), newest first: what a cloud vouches for its
// key set with, so that peers which pinned any of them accept the set.
func (m *Manager) PublishedSigners(ctx context.Context) ([]*Signer, error) {
	ks, err := m.Store.ListSigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Signer
	for _, k := range ks {
		if k.Status == StatusRetired {
			continue
		}
		s, err := m.open(k)
		if err != nil {
			return nil, fmt.Errorf("published signers: %w", err)
		}
		out = append(out, s)
	}
	return out, nil
}
