package enrol

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"time"
)

// fingerprint is the SHA-256 of a certificate's DER.
func fingerprint(der []byte) []byte {
	sum := sha256.Sum256(der)
	return sum[:]
}

// pinnedClient is an HTTPS client that trusts exactly one CA, known only
// by its fingerprint: the hub must present that CA in its chain, and its
// server certificate must be signed by it for server use. The host name
// is not checked: on first contact the pin is the trust anchor, and a
// board often enrols by an address the certificate does not list. (A node
// certificate from the same CA is a client certificate, so a stolen board
// cannot pose as the hub.) The check runs in VerifyConnection, which,
// unlike VerifyPeerCertificate, runs on resumed sessions too.
func pinnedClient(pin []byte, timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by VerifyConnection below
		VerifyConnection:   func(cs tls.ConnectionState) error { return verifyPinned(cs.PeerCertificates, pin, time.Now()) },
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// verifyPinned checks a presented chain against the pinned CA.
func verifyPinned(chain []*x509.Certificate, pin []byte, now time.Time) error {
	if len(chain) == 0 {
		return fmt.Errorf("%w: the hub presented no certificate", ErrPinMismatch)
	}
	var ca *x509.Certificate
	for _, c := range chain[1:] {
		if bytes.Equal(fingerprint(c.Raw), pin) {
			ca = c
			break
		}
	}
	if ca == nil {
		return fmt.Errorf("%w: none of the %d certificates the hub presented has it", ErrPinMismatch, len(chain))
	}
	if !ca.IsCA {
		return fmt.Errorf("%w: the pinned certificate is not a CA", ErrPinMismatch)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("%w: the hub's certificate is not a server certificate of the pinned CA: %v", ErrPinMismatch, err)
	}
	return nil
}
