package sqlstore

import "github.com/onecommons/commonsid/portable"

var _ portable.Store = (*DB)(nil)
