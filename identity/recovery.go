package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cosmos/go-bip39"

	"github.com/onecommons/commonsid/did/webvh"
)

// Recovery kits: a key the person holds.
//
// A did:webvh account (DIDMethodWebVH) made with CreateWithRecoveryKit
// gets, besides the cloud's custodial key, a second update key in the
// genesis entry of its log: the public key of a recovery kit that only the
// person holds. The kit is a recovery phrase of 24 words of the BIP-39
// English word list, encoding 256 bits of entropy from crypto/rand and
// its 8-bit checksum.
//
// Rules:
//
//   - The phrase is shown once (the sign-up page, or the standard output
//     of `user create`) and never stored, logged or put in a URL. Only its
//     public key is kept, and only as an update key of the DID log: the
//     log is where it is read from (RecoveryKeys).
//   - Input is normalised before use: letters are lowered, and any run of
//     white space separates two words. A phrase that is not 24 words of
//     the list, or whose checksum is wrong, is refused with
//     ErrRecoveryPhrase and a message naming the problem (never the
//     words).
//   - Derivation (RecoveryKeyFromPhrase), fixed and versioned by its info
//     string:
//     seed = BIP-39 seed of the normalised phrase with an empty passphrase
//     (PBKDF2-HMAC-SHA512, 2048 rounds, salt "mnemonic", 64 bytes);
//     ed25519 seed = HKDF-SHA256(secret = seed, salt = empty,
//     info = RecoveryKeyInfo, 32 bytes); the key is the Ed25519 key of
//     that seed, and its public form is a did:key multikey ("z6Mk…"), as
//     did:webvh updateKeys hold them.
//   - For now the key can only be checked (CheckRecoveryPhrase): the
//     cloud signs every entry with its custodial key. Moves, key changes
//     that only the recovery key may sign, and witnesses come later.
//
// Accounts with a did:key DID get no recovery kit.

// RecoveryKeyInfo is the HKDF info string of the recovery key derivation.
const RecoveryKeyInfo = "commonsid/recovery-key/ed25519/v1"

// RecoveryWords is the number of words of a recovery phrase.
const RecoveryWords = 24

// MaxRecoveryPhrase bounds the input of a phrase check (24 words of at
// most 8 letters, with generous room for spaces).
const MaxRecoveryPhrase = 1024

// ErrRecoveryPhrase reports a phrase that is not a valid recovery phrase.
var ErrRecoveryPhrase = errors.New("invalid recovery phrase")

// RecoveryKit is a new recovery phrase and its public key.
type RecoveryKit struct {
	// Words are the 24 words of the phrase, in order.
	Words []string
	// Public is the recovery key; Multikey its did:key multikey.
	Public   ed25519.PublicKey
	Multikey string
}

// Phrase returns the words joined by single spaces.
func (k *RecoveryKit) Phrase() string { return strings.Join(k.Words, " ") }

// NewRecoveryKit makes a recovery phrase from 256 random bits.
func NewRecoveryKit() (*RecoveryKit, error) {
	entropy := make([]byte, 32)
	if _, err := rand.Read(entropy); err != nil {
		return nil, fmt.Errorf("recovery phrase: %w", err)
	}
	phrase, err := bip39.NewMnemonic(entropy)
	if err != nil {
		return nil, fmt.Errorf("recovery phrase: %w", err)
	}
	priv, err := RecoveryKeyFromPhrase(phrase)
	if err != nil {
		return nil, err
	}
	pub := priv.Public().(ed25519.PublicKey)
	return &RecoveryKit{Words: strings.Fields(phrase), Public: pub, Multikey: webvh.Multikey(pub)}, nil
}

// NormalizeRecoveryPhrase lowers the letters of s, separates its words by
// single spaces and checks that they are a recovery phrase: 24 words of
// the BIP-39 English list with a right checksum.
func NormalizeRecoveryPhrase(s string) (string, error) {
	if len(s) > MaxRecoveryPhrase {
		return "", fmt.Errorf("%w: it is too long", ErrRecoveryPhrase)
	}
	words := strings.Fields(strings.ToLower(s))
	if len(words) != RecoveryWords {
		return "", fmt.Errorf("%w: it has %d words, a recovery phrase has %d", ErrRecoveryPhrase, len(words), RecoveryWords)
	}
	for i, w := range words {
		if _, ok := bip39.ReverseWordMap[w]; !ok {
			return "", fmt.Errorf("%w: word %d is not in the recovery word list", ErrRecoveryPhrase, i+1)
		}
	}
	phrase := strings.Join(words, " ")
	if _, err := bip39.MnemonicToByteArray(phrase); err != nil {
		return "", fmt.Errorf("%w: its checksum is wrong (a word is mistyped or out of order)", ErrRecoveryPhrase)
	}
	return phrase, nil
}

// RecoveryKeyFromPhrase derives the recovery key of a phrase (see the
// rules above); the phrase is normalised and checked first.
func RecoveryKeyFromPhrase(s string) (ed25519.PrivateKey, error) {
	phrase, err := NormalizeRecoveryPhrase(s)
	if err != nil {
		return nil, err
	}
	seed := bip39.NewSeed(phrase, "")
	k, err := hkdf.Key(sha256.New, seed, nil, RecoveryKeyInfo, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("recovery key: %w", err)
	}
	return ed25519.NewKeyFromSeed(k), nil
}

// CreateWithRecoveryKit is Create for a person who will be shown a
// recovery kit: with DIDMethodWebVH the account's log lists the kit's key
// as an update key, and the kit is returned to be shown once. With did:key
// accounts it is Create, and the kit is nil.
func (s *Service) CreateWithRecoveryKit(ctx context.Context, p CreateParams) (*Account, *RecoveryKit, error) {
	if s.DIDMethod != DIDMethodWebVH {
		a, err := s.Create(ctx, p)
		return a, nil, err
	}
	kit, err := NewRecoveryKit()
	if err != nil {
		return nil, nil, err
	}
	p.RecoveryKey = kit.Public
	a, err := s.Create(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	return a, kit, nil
}

// RecoveryKeys returns the update keys of the account's did:webvh log
// other than its custodial key (the key of the document's verification
// methods): the recovery keys the person holds. An account without a log
// (did:key) has none.
func (s *Service) RecoveryKeys(ctx context.Context, didID string) ([]string, error) {
	if !IsWebVH(didID) || s.DIDLogs == nil {
		return nil, nil
	}
	l, err := s.DIDLogs.GetDIDLog(ctx, didID)
	if err != nil {
		return nil, err
	}
	res, err := webvh.Verify(l.Log, webvh.Options{DID: didID, Now: s.Now})
	if err != nil {
		return nil, fmt.Errorf("account DID log: %w", err)
	}
	var doc struct {
		VerificationMethod []struct {
			PublicKeyMultibase string `json:"publicKeyMultibase"`
		} `json:"verificationMethod"`
	}
	if err := json.Unmarshal(res.Document, &doc); err != nil {
		return nil, fmt.Errorf("account DID document: %w", err)
	}
	custodial := map[string]bool{}
	for _, vm := range doc.VerificationMethod {
		custodial[vm.PublicKeyMultibase] = true
	}
	var out []string
	for _, k := range res.Metadata.UpdateKeys {
		if !custodial[k] {
			out = append(out, k)
		}
	}
	return out, nil
}

// CheckRecoveryPhrase reports whether phrase derives one of the account's
// recovery keys. A phrase that is not valid returns ErrRecoveryPhrase.
func (s *Service) CheckRecoveryPhrase(ctx context.Context, didID, phrase string) (bool, error) {
	priv, err := RecoveryKeyFromPhrase(phrase)
	if err != nil {
		return false, err
	}
	keys, err := s.RecoveryKeys(ctx, didID)
	if err != nil {
		return false, err
	}
	mk := webvh.Multikey(priv.Public().(ed25519.PublicKey))
	for _, k := range keys {
		if k == mk {
			return true, nil
		}
	}
	return false, nil
}
