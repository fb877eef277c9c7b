package sqlstore_test

import (
	"path/filepath"
	"testing"

	"github.com/onecommons/commonsid/internal/testpg"
	"github.com/onecommons/commonsid/store/storetest"
)

func TestOIDFedSQLite(t *testing.T) {
	storetest.RunOIDFed(t, func(t *testing.T) storetest.OIDFedStore {
		return open(t, "sqlite:"+filepath.Join(t.TempDir(), "test.db"))
	})
}

func TestOIDFedPostgres(t *testing.T) {
	storetest.RunOIDFed(t, func(t *testing.T) storetest.OIDFedStore {
		return open(t, testpg.DSN(t))
	})
}
