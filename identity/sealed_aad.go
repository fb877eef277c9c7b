package identity

// The associated data each account secret is sealed under, for code that
// re-seals every stored value (rotating the key-encryption key).

// DIDKeyAAD binds an account's sealed custodial key to its DID.
func DIDKeyAAD(did string) []byte { return aadDIDKey(did) }

// PairwiseAAD binds an account's sealed pairwise secret to its DID.
func PairwiseAAD(did string) []byte { return aadPairwise(did) }

// TOTPAAD binds an account's sealed authenticator-app secret to its DID.
func TOTPAAD(did string) []byte { return aadTOTP(did) }
