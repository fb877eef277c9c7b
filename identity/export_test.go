package identity

import "context"

// CreateWithHash exposes create for the benchmark that leaves out hashing.
func CreateWithHash(ctx context.Context, s *Service, p CreateParams, hash string) (*Account, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return s.create(ctx, p, hash)
}
