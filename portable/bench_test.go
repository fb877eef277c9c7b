package portable

import (
	"context"
	"testing"
)

// BenchmarkExportImport measures an export of an account with 10,000
// activity entries and the Open of that file, at the production PBES2
// iteration count. Two PBES2 key derivations (210,000 rounds of
// HMAC-SHA-512 each) dominate both: that cost is the point of them.
func BenchmarkExportImport(b *testing.B) {
	c := fuzzCloud(b)
	in := testInput(b, c, fuzzKey(b), 10000)
	file, err := Export(in)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("export", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Export(in); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(file)), "file-bytes")
	})
	b.Run("open", func(b *testing.B) {
		b.ReportAllocs()
		ctx := context.Background()
		for b.Loop() {
			if _, err := Open(ctx, file, testPassphrase, VerifyOptions{Resolver: c.Resolver}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
