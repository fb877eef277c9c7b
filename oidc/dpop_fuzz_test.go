package oidc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// FuzzDPoPProof feeds arbitrary DPoP header values to the proof parser (no
// network, no store). It never panics; every refusal is invalid_dpop_proof;
// an accepted proof has every required claim within its bounds, a
// thumbprint, and a key of an accepted algorithm; and accepting never
// depends on anything but the input.
func FuzzDPoPProof(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.Add(signProof(f, jose.ES256, key, "dpop+jwt", proofClaims()))
	f.Add(rawProof(map[string]any{"alg": "HS256", "typ": "dpop+jwt"}, proofClaims()))
	f.Add(rawProof(map[string]any{"alg": "none", "typ": "dpop+jwt"}, proofClaims()))
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		pr, derr := parseDPoPProof(raw)
		if derr != nil {
			if pr != nil || derr.code != errInvalidDPoPProof || derr.desc == "" {
				t.Fatalf("refusal %+v with %+v", derr, pr)
			}
			return
		}
		if pr.JKT == "" || pr.JTI == "" || len(pr.JTI) > 256 || pr.HTM == "" || len(pr.HTM) > 16 ||
			pr.HTU == "" || len(pr.HTU) > 2048 || pr.IAT.IsZero() || len(raw) > dpopMaxProof {
			t.Fatalf("accepted %+v", pr)
		}
		if strings.Count(raw, ".") != 2 {
			t.Fatalf("accepted a proof that is not a compact JWS: %q", raw)
		}
		again, derr := parseDPoPProof(raw)
		if derr != nil || *again != *pr {
			t.Fatalf("second parse differs: %+v %v", again, derr)
		}
	})
}
