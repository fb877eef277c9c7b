//go:build !unix

package sqlstore

// flockFile does not lock where flock is unavailable: stop every other
// commonsid process by hand before rotating the key-encryption key.
func flockFile(path string, exclusive bool) (func(), error) { return func() {}, nil }
