package portable

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/privacy"
)

// Format is the value of the "format" member of a version 1 export.
const Format = "commonsid.export/v1"

// SignatureType is the "typ" protected header of both signatures.
const SignatureType = "commonsid-export+json"

// ActivityImported is the activity kind an importer records when it takes an
// account in. [Compare] ignores entries of this kind.
const ActivityImported = "imported"

// Document is the signed payload of an export file.
type Document struct {
	Format          string            `json:"format"`
	ExportedAt      time.Time         `json:"exported_at"`
	Issuer          string            `json:"issuer"`
	CloudDID        string            `json:"cloud_did"`
	Account         Account           `json:"account"`
	DIDDocument     *did.Document     `json:"did_document"`
	PrivacySettings *privacy.Settings `json:"privacy_settings"`
	Consents        []Consent         `json:"consents"`
	Passkeys        []Passkey         `json:"passkeys"`
	// PasskeyUserHandle is the WebAuthn user handle the passkeys were made
	// for (random bytes); the importing cloud keeps it so that they still
	// sign in.
	PasskeyUserHandle Bytes      `json:"passkey_user_handle,omitempty"`
	Activity          []Activity `json:"activity"`
	Secrets           Secrets    `json:"secrets"`
	// DIDLog is, for a did:webvh account, its log (did.jsonl) at the
	// moment of export; DIDWitness its did-witness.json (absent when the
	// log has none) and DIDLogVersion the number of its last entry. The
	// account signature is then made with the custodial key under the
	// log's current DID, and did_document is the log's current document.
	DIDLog        string          `json:"did_log,omitempty"`
	DIDWitness    json.RawMessage `json:"did_witness,omitempty"`
	DIDLogVersion int             `json:"did_log_version,omitempty"`
	// Access is the person's contribution level (package access), absent
	// when they have none beyond basic.
	Access *Access `json:"access,omitempty"`
}

// Access is the contribution grant of an export.
type Access struct {
	Level     string     `json:"level"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"` // absent for basic
	Source    string     `json:"source"`
	SetAt     time.Time  `json:"set_at"`
}

// Account is the account record of an export.
type Account struct {
	DID           string    `json:"did"`
	Handle        string    `json:"handle"`
	Name          string    `json:"name"`
	Email         string    `json:"email"`
	EmailVerified bool      `json:"email_verified"`
	Status        string    `json:"status"`
	HomeIssuer    string    `json:"home_issuer"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
	// PasswordHash is the argon2id PHC string, present only when the person
	// chose to include it.
	PasswordHash string `json:"password_hash,omitempty"`
}

// Consent is one consent of an export, keyed by issuer, client and family.
type Consent struct {
	Issuer        string     `json:"issuer"`
	ClientID      string     `json:"client_id"`
	FamilySector  string     `json:"family_sector"`
	Sector        string     `json:"sector"`
	SubjectSector string     `json:"subject_sector"`
	Scopes        []string   `json:"scopes"`
	Claims        []string   `json:"claims"`
	GrantedAt     time.Time  `json:"granted_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	ExpiresAt     *time.Time `json:"expires_at"`
}

// Passkey is the public data of one WebAuthn credential.
type Passkey struct {
	CredentialID      Bytes      `json:"credential_id"`
	Name              string     `json:"name"`
	PublicKey         Bytes      `json:"public_key"` // COSE_Key
	AAGUID            Bytes      `json:"aaguid"`
	SignCount         uint32     `json:"sign_count"`
	Transports        []string   `json:"transports"`
	AttestationType   string     `json:"attestation_type,omitempty"`
	AttestationFormat string     `json:"attestation_format,omitempty"`
	Attachment        string     `json:"attachment,omitempty"`
	UserVerified      bool       `json:"user_verified"`
	BackupEligible    bool       `json:"backup_eligible"`
	BackupState       bool       `json:"backup_state"`
	CreatedAt         time.Time  `json:"created_at"`
	LastUsedAt        *time.Time `json:"last_used_at"`
}

// Activity is one entry of the activity log.
type Activity struct {
	ID        int64          `json:"id"`
	At        time.Time      `json:"at"`
	Kind      string         `json:"kind"`
	ClientID  string         `json:"client_id,omitempty"`
	Detail    map[string]any `json:"detail,omitempty"`
	IP        string         `json:"ip,omitempty"`
	UserAgent string         `json:"user_agent,omitempty"`
}

// Secrets holds the encrypted secrets: each a JWE in compact serialization,
// PBES2-HS512+A256KW with A256GCM, under the person's passphrase.
type Secrets struct {
	DIDKey         string `json:"did_key"`         // the 32-byte Ed25519 seed
	PairwiseSecret string `json:"pairwise_secret"` // the 32-byte pairwise secret
}

// Bytes is binary data written as unpadded base64url in JSON.
type Bytes []byte

// MarshalJSON implements json.Marshaler.
func (b Bytes) MarshalJSON() ([]byte, error) {
	return json.Marshal(base64.RawURLEncoding.EncodeToString(b))
}

// UnmarshalJSON implements json.Unmarshaler.
func (b *Bytes) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	v, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return errors.New("not unpadded base64url")
	}
	*b = v
	return nil
}

// ConsentRecord is a consent as the stores know it, plus what the file keys
// it by: the issuer that holds the client, the client's own pairwise sector
// and the sector of its family root (empty when it is not a fork).
type ConsentRecord struct {
	privacy.Consent
	Issuer       string
	FamilySector string
	Sector       string
}

// IdentityAccount returns the account as an identity.Account (without its
// sealed secrets, which the importer seals under its own key).
func (d *Document) IdentityAccount() *identity.Account {
	a := d.Account
	return &identity.Account{
		DID: a.DID, Handle: a.Handle, Email: a.Email, EmailVerified: a.EmailVerified, Name: a.Name,
		PasswordHash: a.PasswordHash, Status: a.Status, HomeIssuer: a.HomeIssuer,
		CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt,
	}
}

// ConsentRecords returns the consents for the privacy store.
func (d *Document) ConsentRecords() []ConsentRecord {
	out := make([]ConsentRecord, 0, len(d.Consents))
	for _, c := range d.Consents {
		out = append(out, ConsentRecord{
			Consent: privacy.Consent{
				AccountDID: d.Account.DID, ClientID: c.ClientID, Scopes: c.Scopes, Claims: c.Claims,
				SubjectSector: c.SubjectSector, GrantedAt: c.GrantedAt, UpdatedAt: c.UpdatedAt, ExpiresAt: c.ExpiresAt,
			},
			Issuer: c.Issuer, FamilySector: c.FamilySector, Sector: c.Sector,
		})
	}
	return out
}

// IdentityPasskeys returns the passkeys for the passkey store.
func (d *Document) IdentityPasskeys() []identity.Passkey {
	out := make([]identity.Passkey, 0, len(d.Passkeys))
	for _, p := range d.Passkeys {
		out = append(out, identity.Passkey{
			ID: p.CredentialID, AccountDID: d.Account.DID, Name: p.Name, PublicKey: p.PublicKey,
			AttestationType: p.AttestationType, AttestationFormat: p.AttestationFormat, AAGUID: p.AAGUID,
			SignCount: p.SignCount, Transports: p.Transports, Attachment: p.Attachment,
			UserVerified: p.UserVerified, BackupEligible: p.BackupEligible, BackupState: p.BackupState,
			CreatedAt: p.CreatedAt, LastUsedAt: p.LastUsedAt,
		})
	}
	return out
}

// PrivacyActivity returns the activity log for the privacy store.
func (d *Document) PrivacyActivity() []*privacy.Activity {
	out := make([]*privacy.Activity, 0, len(d.Activity))
	for _, a := range d.Activity {
		out = append(out, &privacy.Activity{
			ID: a.ID, AccountDID: d.Account.DID, At: a.At, Kind: a.Kind, ClientID: a.ClientID,
			Detail: a.Detail, IP: a.IP, UserAgent: a.UserAgent,
		})
	}
	return out
}

// Compare lists the top-level fields (by their JSON names) in which a and b
// differ. It ignores what legitimately changes between two exports of the
// same account: "exported_at", "issuer", "cloud_did", "secrets" (the
// ciphertexts change with every random salt; compare [Opened.DIDKey] and
// [Opened.PairwiseSecret] instead), activity entries of kind "imported", and
// the ids of activity entries (each store numbers its own log), and what a
// move changes: the account's home_issuer and updated_at, and the issuer and
// client_id of consents (consents follow the service's sector, whose
// client_id differs on each cloud).
func Compare(a, b Document) []string {
	var diff []string
	add := func(name string, x, y any) {
		if !sameJSON(x, y) {
			diff = append(diff, name)
		}
	}
	add("format", a.Format, b.Format)
	add("account", movedAccount(a.Account), movedAccount(b.Account))
	add("did_document", a.DIDDocument, b.DIDDocument)
	add("privacy_settings", a.PrivacySettings, b.PrivacySettings)
	add("consents", movedConsents(a.Consents), movedConsents(b.Consents))
	add("passkeys", a.Passkeys, b.Passkeys)
	add("activity", comparableActivity(a.Activity), comparableActivity(b.Activity))
	add("access", a.Access, b.Access)
	return diff
}

// movedAccount drops what a move changes: the home and the time of the
// change.
func movedAccount(a Account) Account {
	a.HomeIssuer, a.UpdatedAt = "", time.Time{}
	return a
}

// movedConsents drops what a move changes: the cloud and the services'
// local client_ids (consents follow the service's sector).
func movedConsents(in []Consent) []Consent {
	out := []Consent{}
	for _, c := range in {
		c.Issuer, c.ClientID = "", ""
		out = append(out, c)
	}
	return out
}

func comparableActivity(in []Activity) []Activity {
	out := []Activity{}
	for _, e := range in {
		if e.Kind == ActivityImported {
			continue
		}
		e.ID = 0
		out = append(out, e)
	}
	return out
}

// sameJSON reports whether x and y have the same JSON form, so that a nil
// and an empty list, or two equal instants in different zones, compare equal
// only when they would be written alike.
func sameJSON(x, y any) bool {
	var vx, vy any
	if err := roundTrip(x, &vx); err != nil {
		return false
	}
	if err := roundTrip(y, &vy); err != nil {
		return false
	}
	return reflect.DeepEqual(vx, vy)
}

func roundTrip(v any, out *any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("marshal: %w", err)
	}
	return json.Unmarshal(b, out)
}
