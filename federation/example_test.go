package federation_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/onecommons/commonsid/federation"
)

// Example_memberTokens shows a resource server that honors access tokens
// from every member cloud, issued for this API only. A valid signature says the token was issued;
// to learn whether it was revoked since (a consent taken back on its home
// cloud), ask the introspection endpoint of your own cloud, which answers
// for every member's tokens from replicated revocations.
func Example_memberTokens() {
	ctx := context.Background()
	m := &federation.TokenVerifier{Cloud: "https://cloud-b.example"}
	if err := m.Load(ctx); err != nil {
		fmt.Println("trust list:", err)
		return
	}
	http.Handle("/api/notes", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		// Only tokens issued for this API: its resource URI, registered
		// as one of the client's resources and asked for with resource=.
		claims, err := m.Verify(r.Context(), token, "https://notes.example/api")
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "hello %v from %v\n", claims["sub"], claims["iss"])
	}))
}
