package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Identities that are not nodes. Both contain ':', which no node name (a
// DNS subdomain) can, so no node certificate can ever carry them.
const (
	// HubIdentity is the common name of the hub's own MQTT client
	// certificate; the broker lets it publish and subscribe everywhere.
	HubIdentity = "flotilla:hub"
	// AdminIdentity is the common name of the operator's client
	// certificate for the HTTP API.
	AdminIdentity = "flotilla:admin"
	// ServerName is the common name of the hub's server certificate.
	ServerName = "flotilla-hub"
	caName     = "Flotilla hub CA"
	// organization marks every certificate this package issues.
	organization = "flotilla"
)

// Validity periods.
const (
	CAValidity     = 10 * 365 * 24 * time.Hour
	ServerValidity = 365 * 24 * time.Hour
	NodeValidity   = 365 * 24 * time.Hour
	// renewBefore is how close to its expiry a hub certificate is reissued
	// on start.
	renewBefore = 30 * 24 * time.Hour
	// backdate covers clocks that run a little behind the hub's.
	backdate = 5 * time.Minute
)

// Errors about certificate requests. ErrInvalidRequest is wrapped by every
// refusal of a request's content; ErrWeakKey and ErrInvalidName say why.
var (
	ErrInvalidRequest = errors.New("invalid certificate request")
	ErrWeakKey        = errors.New("key type or size not accepted")
	ErrInvalidName    = errors.New("invalid node name")
)

// CA is the hub's certificate authority: it signs the hub's server and
// client certificates and every node's client certificate.
type CA struct {
	Cert *x509.Certificate
	// PEM is Cert, PEM-encoded, as handed to agents.
	PEM []byte
	key crypto.Signer
	now func() time.Time
}

// Fingerprint is "sha256:" and the lower-case hex SHA-256 of the CA
// certificate's DER: what an operator gives an agent to pin the hub.
func (ca *CA) Fingerprint() string { return Fingerprint(ca.Cert) }

// Fingerprint returns "sha256:" and the lower-case hex SHA-256 of cert's
// DER encoding.
func Fingerprint(cert *x509.Certificate) string {
	return api.CAFingerprint(cert.Raw)
}

// Pool returns a certificate pool holding the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// newCA creates a self-signed ECDSA P-256 CA.
func newCA(now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: caName, Organization: []string{organization}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	return caFrom(der, key)
}

// caFrom checks that der is a CA certificate for key.
func caFrom(der []byte, key crypto.Signer) (*CA, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New("the CA certificate is not a CA (basic constraints or key usage)")
	}
	if !samePublicKey(cert.PublicKey, key.Public()) {
		return nil, errors.New("the CA key does not belong to the CA certificate")
	}
	return &CA{Cert: cert, PEM: EncodeCertificate(der), key: key, now: time.Now}, nil
}

func samePublicKey(a, b crypto.PublicKey) bool {
	ka, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ka.Equal(b)
}

// newSerial returns a random positive 128-bit serial number.
func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// SerialString is the form serial numbers take in records and logs:
// lower-case hex.
func SerialString(n *big.Int) string { return hex.EncodeToString(n.Bytes()) }

// issue signs a leaf certificate for pub.
func (ca *CA) issue(cn string, pub crypto.PublicKey, usage x509.ExtKeyUsage, validity time.Duration, hosts []string) (*x509.Certificate, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := ca.now()
	notAfter := now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{organization}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{usage},
		BasicConstraintsValid: true,
	}
	if _, isRSA := pub.(*rsa.PublicKey); isRSA {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %s: %w", cn, err)
	}
	return x509.ParseCertificate(der)
}

// IssueServer signs a server certificate for hosts (DNS names and IP
// addresses).
func (ca *CA) IssueServer(pub crypto.PublicKey, hosts []string) (*x509.Certificate, error) {
	if len(hosts) == 0 {
		return nil, errors.New("a server certificate needs at least one host name or address")
	}
	return ca.issue(ServerName, pub, x509.ExtKeyUsageServerAuth, ServerValidity, hosts)
}

// IssueClient signs a client certificate with common name cn: the hub's
// own identity, the operator's, or (through SignNodeCSR) a node's.
func (ca *CA) IssueClient(cn string, pub crypto.PublicKey, validity time.Duration) (*x509.Certificate, error) {
	if cn == "" {
		return nil, errors.New("a client certificate needs a common name")
	}
	if err := CheckPublicKey(pub); err != nil {
		return nil, err
	}
	return ca.issue(cn, pub, x509.ExtKeyUsageClientAuth, validity, nil)
}

// ParseNodeCSR decodes a PEM certificate request and checks that it is
// fit to become node's client certificate: its signature is good (the
// sender holds the key), its key is strong, and its subject's common name
// is node, a valid node name. Only the common name and the key are used;
// other requested attributes and extensions are ignored.
func ParseNodeCSR(pemBytes []byte, node string) (*x509.CertificateRequest, error) {
	block, rest := pemDecodeType(pemBytes, pemCSR)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM CERTIFICATE REQUEST block", ErrInvalidRequest)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: data after the PEM block", ErrInvalidRequest)
	}
	csr, err := x509.ParseCertificateRequest(block)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrInvalidRequest, err)
	}
	if err := CheckPublicKey(csr.PublicKey); err != nil {
		return nil, err
	}
	if err := ValidateNodeName(node); err != nil {
		return nil, err
	}
	if cn := csr.Subject.CommonName; cn != node {
		return nil, fmt.Errorf("%w: the request's common name %q is not the node name %q", ErrInvalidRequest, clip(cn), node)
	}
	return csr, nil
}

// SignNodeCSR signs a checked request (see ParseNodeCSR) as a node client
// certificate.
func (ca *CA) SignNodeCSR(csr *x509.CertificateRequest, validity time.Duration) (*x509.Certificate, error) {
	if err := ValidateNodeName(csr.Subject.CommonName); err != nil {
		return nil, err
	}
	return ca.IssueClient(csr.Subject.CommonName, csr.PublicKey, validity)
}

// ValidateNodeName checks a node name for a certificate: a DNS subdomain
// (which keeps it clear of MQTT's wildcards and separators, and of the
// hub's own identities).
func ValidateNodeName(node string) error {
	if err := api.ValidateDNSSubdomain(node); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidName, err)
	}
	return nil
}

// CheckPublicKey accepts ECDSA keys on P-256, P-384 or P-521, Ed25519
// keys and RSA keys of at least 2048 bits.
func CheckPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("%w: ECDSA curve %s; use P-256, P-384 or P-521", ErrWeakKey, k.Curve.Params().Name)
	case ed25519.PublicKey:
		return nil
	case *rsa.PublicKey:
		if k.N.BitLen() >= 2048 {
			return nil
		}
		return fmt.Errorf("%w: RSA key of %d bits; use at least 2048", ErrWeakKey, k.N.BitLen())
	}
	return fmt.Errorf("%w: %T; use ECDSA P-256, Ed25519 or RSA of at least 2048 bits", ErrWeakKey, pub)
}

// pemDecodeType returns the DER of the first PEM block of type typ.
func pemDecodeType(b []byte, typ string) ([]byte, []byte) {
	block, rest := pemDecode(b)
	if block == nil || block.Type != typ {
		return nil, rest
	}
	return block.Bytes, rest
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
