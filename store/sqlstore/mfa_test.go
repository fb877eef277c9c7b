package sqlstore_test

import (
	"path/filepath"
	"testing"

	"github.com/onecommons/commonsid/internal/testpg"
	"github.com/onecommons/commonsid/store/storetest"
)

func TestMFASQLite(t *testing.T) {
	storetest.RunMFA(t, func(t *testing.T) storetest.MFAStore {
		return open(t, "sqlite:"+filepath.Join(t.TempDir(), "test.db"))
	})
}

func TestMFAPostgres(t *testing.T) {
	storetest.RunMFA(t, func(t *testing.T) storetest.MFAStore {
		return open(t, testpg.DSN(t))
	})
}
