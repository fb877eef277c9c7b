package did

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/go-jose/go-jose/v4"

	"github.com/onecommons/commonsid/did/webvh"
)

// WebVHFetcher retrieves a did:webvh log or witness file by HTTPS URL (see
// [webvh.Fetcher]). The caller supplies it with its own guarded client,
// timeout and size limit; this package never fetches did:webvh on its own.
type WebVHFetcher = webvh.Fetcher

// WebVHFallback returns a verified copy of the log of a did:webvh DID (its
// SCID the DID's, its witness threshold met) from somewhere other than the
// DID's own host, which failed with cause. The resolver asks it only then.
type WebVHFallback func(ctx context.Context, did string, cause error) (*webvh.Result, error)

// ErrDeactivated reports a DID whose controller deactivated it: it resolves
// to no document.
var ErrDeactivated = errors.New("DID is deactivated")

// Bounds on a did:webvh document turned into a [Document].
const (
	webvhMaxMethods  = 64
	webvhMaxServices = 64
)

// resolveWebVH resolves a did:webvh DID through r.WebVH: the log (and the
// witness file when the log uses witnesses) is fetched and verified by
// package webvh, and the current document becomes a Document. When a fetch
// from the DID's host fails, r.WebVHFallback (if set) is asked for a
// verified copy of the log from elsewhere.
func (r *Resolver) resolveWebVH(ctx context.Context, id string) (*Document, error) {
	if r.WebVH == nil {
		return nil, fmt.Errorf("%w: did:webvh (no fetcher configured)", ErrUnsupportedMethod)
	}
	timeout := r.Timeout
	if timeout == 0 {
		timeout = WebTimeout
	}
	var unreachable atomic.Bool // a fetch from the DID's host failed
	fetch := func(ctx context.Context, u string) ([]byte, error) {
		b, err := r.WebVH(ctx, u)
		if err != nil {
			unreachable.Store(true)
		}
		return b, err
	}
	fctx, cancel := context.WithTimeout(ctx, timeout)
	res, err := webvh.Resolve(fctx, id, fetch, webvh.Options{})
	cancel()
	if errors.Is(err, webvh.ErrInvalidDID) {
		return nil, fmt.Errorf("%w: %w", ErrInvalidDID, err)
	}
	if err != nil && unreachable.Load() && r.WebVHFallback != nil {
		// The DID's host cannot be reached or answered an error (a log it
		// serves that does not verify is refused as it is): a copy from
		// elsewhere, with time of its own.
		fctx, cancel := context.WithTimeout(ctx, 2*timeout)
		alt, ferr := r.WebVHFallback(fctx, id, err)
		cancel()
		switch {
		case ferr != nil:
			err = fmt.Errorf("%w (no copy elsewhere: %v)", err, ferr)
		case !webvhCopyOf(alt, id):
			err = fmt.Errorf("%w (the copy found elsewhere is not this DID's log)", err)
		default:
			res, err = alt, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", id, err)
	}
	if res.Metadata.Deactivated {
		return nil, fmt.Errorf("resolve %s: %w", id, ErrDeactivated)
	}
	if res.DID != id {
		return nil, fmt.Errorf("resolve %s: the DID has moved to %s", id, res.DID)
	}
	doc, err := webvhDocument(res.Document)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", id, err)
	}
	addImplicitServices(doc)
	return doc, nil
}

// webvhCopyOf reports whether res, a log from a fallback, is the log of
// id: its SCID, and id the state.id of one of its entries.
func webvhCopyOf(res *webvh.Result, id string) bool {
	want, err := webvh.ParseDID(id)
	if err != nil || res == nil || len(res.Entries) == 0 || res.Metadata.SCID != want.SCID || !res.Metadata.Witnessed {
		return false
	}
	for _, e := range res.Entries {
		if e.DID == id {
			return true
		}
	}
	return false
}

// webvhDocument turns a DID document from a did:webvh log into a Document.
// Multikey / Ed25519VerificationKey2020 (publicKeyMultibase, Ed25519) and
// JsonWebKey(2020) methods are kept; methods of other key types, and
// services whose endpoint is not a string, are left out.
func webvhDocument(raw json.RawMessage) (*Document, error) {
	var s struct {
		Context            json.RawMessage   `json:"@context"`
		ID                 string            `json:"id"`
		AlsoKnownAs        []string          `json:"alsoKnownAs"`
		Controller         json.RawMessage   `json:"controller"`
		VerificationMethod []json.RawMessage `json:"verificationMethod"`
		Authentication     []json.RawMessage `json:"authentication"`
		AssertionMethod    []json.RawMessage `json:"assertionMethod"`
		Service            []json.RawMessage `json:"service"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("malformed DID document: %v", err)
	}
	if len(s.VerificationMethod) > webvhMaxMethods || len(s.Service) > webvhMaxServices {
		return nil, fmt.Errorf("DID document has more than %d methods or services", webvhMaxMethods)
	}
	doc := &Document{ID: s.ID, AlsoKnownAs: s.AlsoKnownAs}
	var ctxs []any
	if json.Unmarshal(s.Context, &ctxs) == nil {
		for _, c := range ctxs {
			if c, ok := c.(string); ok {
				doc.Context = append(doc.Context, c)
			}
		}
	} else {
		var c string
		if json.Unmarshal(s.Context, &c) == nil {
			doc.Context = []string{c}
		}
	}
	if len(doc.Context) == 0 {
		doc.Context = []string{ContextV1}
	}
	_ = json.Unmarshal(s.Controller, &doc.Controller)
	for _, m := range s.VerificationMethod {
		if vm, ok := webvhMethod(doc.ID, m); ok {
			doc.VerificationMethod = append(doc.VerificationMethod, vm)
		}
	}
	// References may be ids or embedded methods.
	refs := func(list []json.RawMessage) []string {
		var out []string
		for _, r := range list {
			var ref string
			if json.Unmarshal(r, &ref) == nil {
				out = append(out, absID(doc.ID, ref))
				continue
			}
			if vm, ok := webvhMethod(doc.ID, r); ok && len(doc.VerificationMethod) < webvhMaxMethods {
				doc.VerificationMethod = append(doc.VerificationMethod, vm)
				out = append(out, vm.ID)
			}
		}
		return out
	}
	doc.Authentication = refs(s.Authentication)
	doc.AssertionMethod = refs(s.AssertionMethod)
	for _, raw := range s.Service {
		var svc struct {
			ID       string          `json:"id"`
			Type     json.RawMessage `json:"type"`
			Endpoint json.RawMessage `json:"serviceEndpoint"`
		}
		if json.Unmarshal(raw, &svc) != nil {
			continue
		}
		var typ, ep string
		if json.Unmarshal(svc.Type, &typ) != nil {
			var types []string
			if json.Unmarshal(svc.Type, &types) != nil || len(types) == 0 {
				continue
			}
			typ = types[0]
		}
		if json.Unmarshal(svc.Endpoint, &ep) != nil {
			continue
		}
		doc.Service = append(doc.Service, Service{ID: svc.ID, Type: typ, ServiceEndpoint: ep})
	}
	return doc, nil
}

// webvhMethod decodes one verification method; ok is false for methods
// this package cannot use.
func webvhMethod(docID string, raw json.RawMessage) (VerificationMethod, bool) {
	var m struct {
		ID                 string           `json:"id"`
		Type               string           `json:"type"`
		Controller         string           `json:"controller"`
		PublicKeyMultibase string           `json:"publicKeyMultibase"`
		PublicKeyJWK       *jose.JSONWebKey `json:"publicKeyJwk"`
	}
	if json.Unmarshal(raw, &m) != nil || m.ID == "" {
		return VerificationMethod{}, false
	}
	vm := VerificationMethod{ID: absID(docID, m.ID), Type: m.Type, Controller: m.Controller}
	if vm.Controller == "" {
		vm.Controller = docID
	}
	switch {
	case m.PublicKeyMultibase != "" && (m.Type == "Multikey" || m.Type == "Ed25519VerificationKey2020"):
		k, err := webvh.ParseMultikey(m.PublicKeyMultibase)
		if err != nil {
			return VerificationMethod{}, false
		}
		vm.key = ed25519.PublicKey(k)
	case m.PublicKeyJWK != nil && strings.HasPrefix(m.Type, "JsonWebKey"):
		k, err := jwkFromPublic(m.PublicKeyJWK.Key)
		if err != nil || !m.PublicKeyJWK.IsPublic() {
			return VerificationMethod{}, false
		}
		vm.PublicKeyJWK = k
		vm.key = m.PublicKeyJWK.Key
	default:
		return VerificationMethod{}, false
	}
	return vm, true
}

// addImplicitServices adds the services every did:webvh DID has unless its
// document defines them: #files (relativeRef to the DID's HTTPS location)
// and #whois (LinkedVerifiablePresentation at whois.vp there).
func addImplicitServices(doc *Document) {
	id, err := webvh.ParseDID(doc.ID)
	if err != nil {
		return
	}
	has := func(frag string) bool {
		for _, s := range doc.Service {
			if s.ID == frag || s.ID == doc.ID+frag {
				return true
			}
		}
		return false
	}
	if !has("#files") {
		doc.Service = append(doc.Service, Service{ID: doc.ID + "#files", Type: "relativeRef", ServiceEndpoint: id.BaseURL()})
	}
	if !has("#whois") {
		doc.Service = append(doc.Service, Service{ID: doc.ID + "#whois", Type: "LinkedVerifiablePresentation", ServiceEndpoint: id.BaseURL() + "/whois.vp"})
	}
}

// WebVHDocument returns the current document of a verified did:webvh log
// as resolving its DID would give it (with the implicit services), without
// fetching anything: for a log the caller already holds and verified.
func WebVHDocument(res *webvh.Result) (*Document, error) {
	if res.Metadata.Deactivated {
		return nil, fmt.Errorf("%s: %w", res.DID, ErrDeactivated)
	}
	doc, err := webvhDocument(res.Document)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", res.DID, err)
	}
	addImplicitServices(doc)
	return doc, nil
}
