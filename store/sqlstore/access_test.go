package sqlstore_test

import (
	"path/filepath"
	"testing"

	"github.com/onecommons/commonsid/internal/testpg"
	"github.com/onecommons/commonsid/store/storetest"
)

func TestAccessSQLite(t *testing.T) {
	storetest.RunAccess(t, func(t *testing.T) storetest.AccessStore {
		return open(t, "sqlite:"+filepath.Join(t.TempDir(), "test.db"))
	})
}

func TestAccessPostgres(t *testing.T) {
	storetest.RunAccess(t, func(t *testing.T) storetest.AccessStore {
		return open(t, testpg.DSN(t))
	})
}
