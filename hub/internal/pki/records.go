package pki

import (
	"crypto/rand"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Store kinds of the records this package keeps. They are the hub's own
// bookkeeping, not API resources (CertificateSigningRequests are).
const (
	// KindBootstrapToken records one bootstrap token; metadata.name is the
	// token's id. The secret is kept only as its SHA-256.
	KindBootstrapToken = "BootstrapToken"
	// KindNodeCredential records the certificates issued to one node
	// (metadata.name) and which of them are revoked: together, the
	// revocation list.
	KindNodeCredential = "NodeCredential"
)

// tokenRecord is a stored bootstrap token.
type tokenRecord struct {
	api.TypeMeta   `json:",inline"`
	api.ObjectMeta `json:"metadata"`
	// SecretHash is the hex SHA-256 of the token's secret part.
	SecretHash  string            `json:"secretHash"`
	Expires     api.Time          `json:"expires"`
	UsesLeft    int               `json:"usesLeft"`
	Unlimited   bool              `json:"unlimited,omitempty"`
	Used        int               `json:"used"`
	Labels      map[string]string `json:"labels,omitempty"`
	NodeName    string            `json:"nodeName,omitempty"`
	Description string            `json:"description,omitempty"`
}

// StoreKind is its kind in the store.
func (*tokenRecord) StoreKind() string { return KindBootstrapToken }

// NodeCredential is the certificates issued to one node. A certificate
// listed with Revoked set is refused at connect; so is an unlisted one
// that began before RevokedAt (issued before the record was written).
type NodeCredential struct {
	api.TypeMeta   `json:",inline"`
	api.ObjectMeta `json:"metadata"`
	Certificates   []IssuedCertificate `json:"certificates,omitempty"`
	// RevokedAt is when the node was last revoked; zero if never. A node
	// that was revoked is enrolled again only with an operator's approval.
	RevokedAt api.Time `json:"revokedAt,omitempty"`
}

// StoreKind is its kind in the store.
func (*NodeCredential) StoreKind() string { return KindNodeCredential }

// IssuedCertificate is one certificate issued to a node.
type IssuedCertificate struct {
	// Serial is the certificate's serial number, lower-case hex.
	Serial    string   `json:"serial"`
	NotBefore api.Time `json:"notBefore"`
	NotAfter  api.Time `json:"notAfter"`
	// Request is the name of the CertificateSigningRequest it answered.
	Request string   `json:"request,omitempty"`
	Revoked api.Time `json:"revoked,omitempty"`
}

// alphabet of token ids and secrets and of request names.
const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// randomString returns n characters drawn uniformly from alphabet.
func randomString(n int) (string, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2+8)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, b := range buf {
			// 252 = 7·36: rejecting the rest keeps the draw uniform.
			if b < 252 && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out), nil
}
