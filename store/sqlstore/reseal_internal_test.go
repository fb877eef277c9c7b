package sqlstore

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestSealedColumnsComplete: every column of the schema named *_sealed is
// one that ResealAll re-seals, so rotating the key-encryption key leaves
// no value under the old key.
func TestSealedColumnsComplete(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := d.db.QueryContext(ctx, `SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	found := 0
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(col, "_sealed") {
			continue
		}
		found++
		i := slices.IndexFunc(sealedColumns, func(c sealedColumn) bool { return c.table == table })
		if i < 0 || !slices.Contains(sealedColumns[i].columns, col) {
			t.Errorf("%s.%s is sealed but not in sealedColumns: rotating the key-encryption key would leave it under the old key", table, col)
		}
	}
	if found < 3 {
		t.Fatalf("found only %d sealed columns", found)
	}
}
