package webvh

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// MethodV1 is the method parameter value of did:webvh 1.0.
const MethodV1 = "did:webvh:1.0"

// Bounds on the parameters of one entry.
const (
	maxKeys      = 32   // updateKeys, nextKeyHashes
	maxWitnesses = 32   // witness.witnesses
	maxWatchers  = 16   // watchers
	maxURL       = 2048 // one watcher URL
	maxTTL       = 1 << 31
	// DefaultTTL is the ttl of a log that does not set one, in seconds.
	DefaultTTL = 3600
)

// Witness is the witness parameter: a threshold of distinct did:key
// witnesses. The zero value ({}) means no witnesses.
type Witness struct {
	Threshold int             `json:"threshold"`
	Witnesses []WitnessMember `json:"witnesses"`
}

// WitnessMember is one witness; ID is a did:key (Ed25519) DID.
type WitnessMember struct {
	ID string `json:"id"`
}

// Active reports whether witnesses are configured.
func (w *Witness) Active() bool { return w != nil && len(w.Witnesses) > 0 }

// MarshalJSON writes {} for no witnesses.
func (w Witness) MarshalJSON() ([]byte, error) {
	if len(w.Witnesses) == 0 {
		return []byte("{}"), nil
	}
	type plain Witness
	return json.Marshal(plain(w))
}

// params is what one entry's parameters object sets; a nil field was not
// set (or was null, which reads as the default).
type params struct {
	Method        *string
	SCID          *string
	UpdateKeys    *[]string
	NextKeyHashes *[]string
	Witness       *Witness
	Watchers      *[]string
	Portable      *bool
	Deactivated   *bool
	TTL           *int64
	// nulls lists the parameters given as JSON null.
	nulls map[string]bool
}

// parseParams decodes and type-checks a parameters object.
func parseParams(raw json.RawMessage) (*params, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, errors.New("parameters is not a JSON object")
	}
	p := &params{nulls: map[string]bool{}}
	for k, v := range m {
		if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			switch k {
			case "method", "scid":
				return nil, fmt.Errorf("parameter %s is null", k)
			}
			p.nulls[k] = true
		}
		var err error
		switch k {
		case "method":
			p.Method, err = decodeStrict[string](v)
		case "scid":
			p.SCID, err = decodeStrict[string](v)
		case "updateKeys":
			p.UpdateKeys, err = decodeStrict[[]string](v)
			if err == nil && p.UpdateKeys != nil {
				err = checkUpdateKeys(*p.UpdateKeys)
			}
		case "nextKeyHashes":
			p.NextKeyHashes, err = decodeStrict[[]string](v)
			if err == nil && p.NextKeyHashes != nil {
				err = checkStrings(*p.NextKeyHashes, maxKeys, 128)
			}
		case "witness":
			p.Witness, err = parseWitness(v)
		case "watchers":
			p.Watchers, err = decodeStrict[[]string](v)
			if err == nil && p.Watchers != nil {
				err = checkWatchers(*p.Watchers)
			}
		case "portable":
			p.Portable, err = decodeStrict[bool](v)
		case "deactivated":
			p.Deactivated, err = decodeStrict[bool](v)
		case "ttl":
			p.TTL, err = decodeStrict[int64](v)
			if err == nil && p.TTL != nil && (*p.TTL < 0 || *p.TTL > maxTTL) {
				err = fmt.Errorf("out of range 0…%d", maxTTL)
			}
		default:
			return nil, fmt.Errorf("unknown parameter %q (did:webvh 1.0 defines method, scid, updateKeys, nextKeyHashes, witness, watchers, portable, deactivated, ttl)", k)
		}
		if err != nil {
			return nil, fmt.Errorf("parameter %s: %v", k, err)
		}
	}
	return p, nil
}

// decodeStrict decodes v into a T; null gives nil. Numbers must be integers
// where T is, and strings must be strings: no coercion.
func decodeStrict[T any](v json.RawMessage) (*T, error) {
	if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		return nil, nil
	}
	var t T
	if err := json.Unmarshal(v, &t); err != nil {
		return nil, fmt.Errorf("wrong type: %v", err)
	}
	return &t, nil
}

func checkStrings(list []string, maxN, maxLen int) error {
	if len(list) > maxN {
		return fmt.Errorf("more than %d items", maxN)
	}
	seen := map[string]bool{}
	for _, s := range list {
		if s == "" || len(s) > maxLen {
			return fmt.Errorf("item %.40q is empty or longer than %d", s, maxLen)
		}
		if seen[s] {
			return fmt.Errorf("item %q appears twice", s)
		}
		seen[s] = true
	}
	return nil
}

func checkUpdateKeys(keys []string) error {
	if err := checkStrings(keys, maxKeys, 128); err != nil {
		return err
	}
	for _, k := range keys {
		if _, err := ParseMultikey(k); err != nil {
			return err
		}
	}
	return nil
}

func checkWatchers(list []string) error {
	if err := checkStrings(list, maxWatchers, maxURL); err != nil {
		return err
	}
	for _, s := range list {
		u, err := url.Parse(s)
		if err != nil || u.Scheme == "" {
			return fmt.Errorf("%q is not an absolute URL", s)
		}
	}
	return nil
}

// parseWitness decodes and checks a witness parameter ({} or a threshold of
// distinct did:key Ed25519 witnesses). null gives {}.
func parseWitness(v json.RawMessage) (*Witness, error) {
	if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		return &Witness{}, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(v, &m); err != nil || m == nil {
		return nil, errors.New("not a JSON object")
	}
	if len(m) == 0 {
		return &Witness{}, nil
	}
	for k := range m {
		if k != "threshold" && k != "witnesses" {
			return nil, fmt.Errorf("unknown member %q", k)
		}
	}
	th, err := decodeStrict[int](m["threshold"])
	if err != nil || th == nil {
		return nil, errors.New("threshold must be a positive integer")
	}
	var members []map[string]json.RawMessage
	if err := json.Unmarshal(m["witnesses"], &members); err != nil || len(members) == 0 {
		return nil, errors.New("witnesses must be a non-empty array")
	}
	if len(members) > maxWitnesses {
		return nil, fmt.Errorf("more than %d witnesses", maxWitnesses)
	}
	w := &Witness{Threshold: *th}
	seen := map[string]bool{}
	for _, mem := range members {
		for k := range mem {
			if k != "id" {
				return nil, fmt.Errorf("witness has unknown member %q", k)
			}
		}
		var id string
		if err := json.Unmarshal(mem["id"], &id); err != nil {
			return nil, errors.New("witness id must be a string")
		}
		mk, ok := strings.CutPrefix(id, "did:key:")
		if !ok || strings.Contains(mk, "#") {
			return nil, fmt.Errorf("witness id %q is not a did:key DID", id)
		}
		if _, err := ParseMultikey(mk); err != nil {
			return nil, fmt.Errorf("witness id %q: %v", id, err)
		}
		if seen[id] {
			return nil, fmt.Errorf("witness %q is listed twice", id)
		}
		seen[id] = true
		w.Witnesses = append(w.Witnesses, WitnessMember{ID: id})
	}
	if w.Threshold < 1 || w.Threshold > len(w.Witnesses) {
		return nil, fmt.Errorf("threshold %d is not between 1 and the %d witnesses", w.Threshold, len(w.Witnesses))
	}
	return w, nil
}
