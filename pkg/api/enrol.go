package api

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Enrolment: how a board gets its identity. The agent generates its key
// on the board, sends a certificate request with a bootstrap token to
// EnrolPath over HTTPS (pinning the hub CA's fingerprint, since it has no
// other way yet to know the hub), and receives its client certificate,
// the hub CA and the hub's snapshot-signing public key. A request that
// waits for an operator's approval is answered Pending with the name of
// its CertificateSigningRequest; the agent polls EnrolPath/{name}.

// EnrolPath is the hub's enrolment endpoint. It is authenticated by the
// bootstrap token in the body, not by the API's credentials.
const EnrolPath = "/api/v1/enrol"

// TokensPath is where operators create (POST), list (GET) and delete
// (DELETE TokensPath/{id}) bootstrap tokens.
const TokensPath = "/api/v1/bootstraptokens"

// EnrolRequest is the body of POST EnrolPath.
type EnrolRequest struct {
	TypeMeta `json:",inline"`
	// Token is the bootstrap token, "{id}.{secret}".
	Token string `json:"token"`
	// NodeName is the node's name; the request's subject common name must
	// be the same.
	NodeName string `json:"nodeName"`
	// CSR is the PEM-encoded PKCS#10 certificate request.
	CSR string `json:"csr"`
}

// Enrolment outcomes.
const (
	EnrolIssued  = "Issued"
	EnrolPending = "Pending"
	EnrolDenied  = "Denied"
)

// EnrolResponse answers an EnrolRequest or a poll of EnrolPath/{name}.
type EnrolResponse struct {
	TypeMeta `json:",inline"`
	// Status is Issued, Pending or Denied.
	Status string `json:"status"`
	// Name is the CertificateSigningRequest's name, to poll while Pending.
	Name    string `json:"name"`
	Message string `json:"message,omitempty"`
	// Certificate is the node's PEM-encoded client certificate (Issued).
	Certificate string `json:"certificate,omitempty"`
	// CA is the PEM-encoded hub CA certificate (Issued).
	CA string `json:"ca,omitempty"`
	// SigningKey is the PEM-encoded (PKIX) Ed25519 public key that signs
	// the node's desired snapshots (Issued).
	SigningKey string `json:"signingKey,omitempty"`
}

// BootstrapTokenRequest is the body of POST TokensPath.
type BootstrapTokenRequest struct {
	TypeMeta `json:",inline"`
	// TTLSeconds is how long the token is valid (default 24 h).
	TTLSeconds int64 `json:"ttlSeconds,omitempty"`
	// Uses is how many enrolments the token allows (default 1); 0 with
	// Unlimited set means any number until it expires.
	Uses      int  `json:"uses,omitempty"`
	Unlimited bool `json:"unlimited,omitempty"`
	// Labels are put on every node enrolled with the token.
	Labels map[string]string `json:"labels,omitempty"`
	// NodeName, if set, is the only node name the token enrols.
	NodeName    string `json:"nodeName,omitempty"`
	Description string `json:"description,omitempty"`
}

// BootstrapToken describes a token without its secret, as listed.
type BootstrapToken struct {
	TypeMeta    `json:",inline"`
	ID          string            `json:"id"`
	Expires     Time              `json:"expires"`
	UsesLeft    int               `json:"usesLeft"`
	Unlimited   bool              `json:"unlimited,omitempty"`
	Used        int               `json:"used"`
	Labels      map[string]string `json:"labels,omitempty"`
	NodeName    string            `json:"nodeName,omitempty"`
	Description string            `json:"description,omitempty"`
}

// BootstrapTokenResponse answers POST TokensPath: the token itself, shown
// this once (the hub keeps only its hash), and the CA fingerprint an agent
// pins on first contact.
type BootstrapTokenResponse struct {
	BootstrapToken `json:",inline"`
	Token          string `json:"token"`
	// CAFingerprint is "sha256:" and the lower-case hex SHA-256 of the hub
	// CA certificate's DER encoding.
	CAFingerprint string `json:"caFingerprint"`
}

// CAFingerprint returns the fingerprint of a CA certificate given in DER:
// "sha256:" and the lower-case hex of its SHA-256.
func CAFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ParseCAFingerprint accepts a CA fingerprint as CAFingerprint writes it,
// or as the colon-separated hex pairs that `openssl x509 -noout
// -fingerprint -sha256` prints (with or without its "sha256 Fingerprint="
// prefix), and returns the 32 bytes of the hash.
func ParseCAFingerprint(s string) ([]byte, error) {
	h := strings.ToLower(strings.TrimSpace(s))
	h = strings.TrimPrefix(h, "sha256 fingerprint=")
	h = strings.TrimPrefix(h, "sha256:")
	h = strings.ReplaceAll(h, ":", "")
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		if len(s) > 80 {
			s = s[:80] + "…"
		}
		return nil, fmt.Errorf("CA fingerprint %q is not sha256: and 64 hex digits", s)
	}
	return b, nil
}
