package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/privacy"
)

var _ federation.ServiceSectorStore = (*DB)(nil)

// sectorPattern is a LIKE pattern matching stored metadata (JSON written
// by encoding/json, without spaces) whose x_sector is sector. Matches are
// candidates only: SQLite's LIKE ignores ASCII case, so each is decoded
// and compared.
func sectorPattern(sector string) string {
	quoted, _ := json.Marshal(sector)
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return `%"x_sector":` + r.Replace(string(quoted)) + `%`
}

// SectorHolders lists at most limit services whose own pairwise sector is
// sector: this cloud's clients (issuer "", peers' sign-in clients left
// out) and peers' announced services (issuer the peer).
func (d *DB) SectorHolders(ctx context.Context, sector string, limit int) ([]federation.SectorHolder, error) {
	if sector == "" || limit <= 0 {
		return nil, nil
	}
	pat := sectorPattern(sector)
	var out []federation.SectorHolder
	for _, q := range []string{
		`SELECT '', client_id, metadata FROM clients WHERE metadata LIKE $1 ESCAPE '\' ORDER BY created_at, client_id LIMIT $2`,
		`SELECT issuer, client_id, metadata FROM federation_services WHERE metadata LIKE $1 ESCAPE '\' ORDER BY updated_at, issuer, client_id LIMIT $2`,
	} {
		rows, err := d.q(ctx).QueryContext(ctx, q, pat, limit)
		if err != nil {
			return nil, fmt.Errorf("sector holders: %w", err)
		}
		for rows.Next() {
			var h federation.SectorHolder
			var raw string
			if err := rows.Scan(&h.Issuer, &h.ClientID, &raw); err != nil {
				rows.Close()
				return nil, fmt.Errorf("sector holders: %w", err)
			}
			var md struct {
				Sector string `json:"x_sector"`
				Peer   bool   `json:"x_peer"`
			}
			if json.Unmarshal([]byte(raw), &md) == nil && md.Sector == sector && !md.Peer && len(out) < limit {
				out = append(out, h)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("sector holders: %w", err)
		}
	}
	return out, nil
}

// ConsentsWithSector lists the consents to a service under which the
// person's sub is computed for sector.
func (d *DB) ConsentsWithSector(ctx context.Context, clientID, sector string) ([]*privacy.Consent, error) {
	rows, err := d.q(ctx).QueryContext(ctx, `SELECT `+consentCols+` FROM consents WHERE client_id = $1 AND subject_sector = $2 ORDER BY granted_at, account_did`,
		clientID, sector)
	if err != nil {
		return nil, fmt.Errorf("consents with sector: %w", err)
	}
	defer rows.Close()
	var out []*privacy.Consent
	for rows.Next() {
		c, err := scanConsent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
