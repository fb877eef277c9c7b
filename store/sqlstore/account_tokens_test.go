package sqlstore_test

import (
	"path/filepath"
	"testing"

	"github.com/onecommons/commonsid/internal/testpg"
	"github.com/onecommons/commonsid/store/storetest"
)

func TestAccountTokensSQLite(t *testing.T) {
	storetest.RunAccountTokens(t, func(t *testing.T) storetest.TokenStore {
		return open(t, "sqlite:"+filepath.Join(t.TempDir(), "test.db"))
	})
}

func TestAccountTokensPostgres(t *testing.T) {
	storetest.RunAccountTokens(t, func(t *testing.T) storetest.TokenStore {
		return open(t, testpg.DSN(t))
	})
}
