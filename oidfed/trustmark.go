package oidfed

import (
	"encoding/json"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// TrustMark is a verified trust mark.
type TrustMark struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Type     string `json:"trust_mark_type"`
	IssuedAt int64  `json:"iat"`
	Expiry   int64  `json:"exp,omitempty"`
	Raw      string `json:"-"`
}

// IssueTrustMark signs a trust mark of type typ for sub.
func IssueTrustMark(k SigningKey, iss, sub, typ string, iat, exp time.Time) (string, error) {
	tm := TrustMark{Issuer: iss, Subject: sub, Type: typ, IssuedAt: iat.Unix(), Expiry: exp.Unix()}
	if err := checkTrustMark(&tm); err != nil {
		return "", err
	}
	payload, err := json.Marshal(tm)
	if err != nil {
		return "", err
	}
	s, err := signer(k, TypTrustMark)
	if err != nil {
		return "", err
	}
	jws, err := s.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

func checkTrustMark(tm *TrustMark) error {
	if err := CheckEntityID(tm.Issuer); err != nil {
		return invalid("trust mark iss: %v", err)
	}
	if err := CheckEntityID(tm.Subject); err != nil {
		return invalid("trust mark sub: %v", err)
	}
	if tm.Type == "" || tm.IssuedAt <= 0 || tm.Expiry <= tm.IssuedAt {
		return invalid("a trust mark needs trust_mark_type, iat and an exp after iat")
	}
	return nil
}

// VerifyTrustMark checks a trust mark signed by a key of issuerJWKS, about
// sub, valid at now.
func VerifyTrustMark(raw string, issuerJWKS *jose.JSONWebKeySet, sub string, now time.Time) (*TrustMark, error) {
	jws, kid, err := parseJWS([]byte(raw), TypTrustMark)
	if err != nil {
		return nil, err
	}
	payload, err := verifyWith(jws, kid, issuerJWKS)
	if err != nil {
		return nil, err
	}
	var tm TrustMark
	if err := json.Unmarshal(payload, &tm); err != nil {
		return nil, invalid("trust mark claims: %v", err)
	}
	if err := checkTrustMark(&tm); err != nil {
		return nil, err
	}
	if tm.Subject != sub {
		return nil, invalid("trust mark is about %q, not %q", tm.Subject, sub)
	}
	if err := checkTimes(tm.IssuedAt, tm.Expiry, now); err != nil {
		return nil, err
	}
	tm.Raw = raw
	return &tm, nil
}
