// Package pki is the hub's public-key infrastructure: its certificate
// authority, its own server and client certificates, the Ed25519 key that
// signs desired snapshots, bootstrap tokens, the enrolment of nodes (a
// certificate request signed for the node name, at once or after an
// operator's approval) and the revocation of their certificates. The keys
// live as files in the hub's data directory; tokens, requests and the
// revocation list live in the store.
package pki

// Files in the PKI directory (Options.Dir, usually {data-dir}/pki, mode
// 0700; every file 0600):
//
//	ca.crt, ca.key               the hub CA: ECDSA P-256, self-signed, 10 years
//	                             (or the operator's, given by path instead)
//	server.crt, server.key       the MQTT and HTTPS server certificate, CN
//	                             flotilla-hub, ECDSA P-256, 1 year, with the
//	                             configured host names and addresses
//	hub-client.crt, .key         the hub's own MQTT client identity, CN
//	                             flotilla:hub, 1 year
//	signing.key, signing.pub     the Ed25519 snapshot-signing key (PKCS#8 PEM)
//	                             and its public half (PKIX PEM)
//
// The server and client certificates are reissued on start when missing,
// not signed by the current CA, within 30 days of expiry, or (the server
// one) when the host names changed. Keys are PKCS#8 PEM.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Options say where the hub's keys live and what its server certificate
// names.
type Options struct {
	// Dir holds the files; it is created 0700.
	Dir string
	// Hosts are the DNS names and IP addresses of the server certificate
	// (default DefaultHosts()).
	Hosts []string
	// CACertFile and CAKeyFile, both set, name an operator-provided CA
	// (PEM) to use instead of generating one. They are read in place.
	CACertFile, CAKeyFile string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Credentials are the hub's keys and certificates.
type Credentials struct {
	CA *CA
	// Server is the server certificate of the MQTT and HTTPS listeners.
	Server tls.Certificate
	// HubClient is the hub's own MQTT client certificate.
	HubClient tls.Certificate
	// SigningKey signs desired snapshots.
	SigningKey ed25519.PrivateKey
	// SigningKeyPEM is the public half, PEM (PKIX), as agents receive it.
	SigningKeyPEM []byte
}

// DefaultHosts are the server certificate's default names: localhost, the
// loopback addresses, the machine's host name and the addresses of its
// interfaces that are up.
func DefaultHosts() []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	if ifaces, err := net.Interfaces(); err == nil {
		for _, iface := range ifaces {
			if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
				continue
			}
			addrs, _ := iface.Addrs()
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok && ipn.IP.IsGlobalUnicast() {
					hosts = append(hosts, ipn.IP.String())
				}
			}
		}
	}
	return normalizeHosts(hosts)
}

func normalizeHosts(hosts []string) []string {
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			h = ip.String()
		}
		if h != "" && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	sort.Strings(out)
	return out
}

// Load reads the hub's credentials from opts.Dir, creating what is
// missing: on first start a CA (unless one is provided), a signing key and
// the hub's certificates.
func Load(opts Options) (*Credentials, error) {
	if opts.Dir == "" {
		return nil, errors.New("pki: no directory")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if len(opts.Hosts) == 0 {
		opts.Hosts = DefaultHosts()
	}
	opts.Hosts = normalizeHosts(opts.Hosts)
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if err := os.Chmod(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	ca, err := loadCA(opts)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	ca.now = opts.Now
	c := &Credentials{CA: ca}
	if c.SigningKey, err = loadSigningKey(opts.Dir); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if c.SigningKeyPEM, err = wire.EncodeSigningKey(c.SigningKey.Public().(ed25519.PublicKey)); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	c.Server, err = loadLeaf(opts, ca, serverCertFile, serverKeyFile, func(cert *x509.Certificate) bool {
		return slices.Equal(certHosts(cert), opts.Hosts)
	}, func(pub crypto.PublicKey) (*x509.Certificate, error) {
		return ca.IssueServer(pub, opts.Hosts)
	})
	if err != nil {
		return nil, fmt.Errorf("pki: server certificate: %w", err)
	}
	// The server presents the CA after its certificate, so that an agent
	// on first contact can pin the CA by its fingerprint.
	c.Server.Certificate = append(c.Server.Certificate[:1:1], ca.Cert.Raw)
	c.HubClient, err = loadLeaf(opts, ca, hubClientCertFile, hubClientKeyFile, func(cert *x509.Certificate) bool {
		return cert.Subject.CommonName == HubIdentity
	}, func(pub crypto.PublicKey) (*x509.Certificate, error) {
		return ca.IssueClient(HubIdentity, pub, ServerValidity)
	})
	if err != nil {
		return nil, fmt.Errorf("pki: hub client certificate: %w", err)
	}
	return c, nil
}

func loadCA(opts Options) (*CA, error) {
	certPath, keyPath := filepath.Join(opts.Dir, caCertFile), filepath.Join(opts.Dir, caKeyFile)
	switch {
	case opts.CACertFile != "" && opts.CAKeyFile != "":
		certPath, keyPath = opts.CACertFile, opts.CAKeyFile
	case opts.CACertFile != "" || opts.CAKeyFile != "":
		return nil, errors.New("a provided CA needs both its certificate and its key")
	default:
		have, err := exists(certPath)
		if err != nil {
			return nil, err
		}
		if !have {
			if keyThere, _ := exists(keyPath); keyThere {
				return nil, fmt.Errorf("%s exists without %s: refusing to replace the CA key", keyPath, certPath)
			}
			ca, err := newCA(opts.Now())
			if err != nil {
				return nil, err
			}
			keyPEM, err := EncodePrivateKey(ca.key)
			if err != nil {
				return nil, err
			}
			// The key first: a certificate without its key is useless, a
			// key without its certificate is refused above.
			if err := writeFileAtomic(keyPath, keyPEM); err != nil {
				return nil, err
			}
			if err := writeFileAtomic(certPath, ca.PEM); err != nil {
				return nil, err
			}
			return ca, nil
		}
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	keyPEM, err := readPrivateFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("read CA key: %w", err)
	}
	cert, err := ParseCertificate(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certPath, err)
	}
	key, err := ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	ca, err := caFrom(cert.Raw, key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certPath, err)
	}
	if now := opts.Now(); now.After(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("%s expired on %s", certPath, ca.Cert.NotAfter.Format(time.RFC3339))
	}
	return ca, nil
}

func loadSigningKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, signingKeyFile)
	b, err := readPrivateFile(path)
	if err == nil {
		key, err := ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		ek, ok := key.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%s: %T, want an Ed25519 key", path, key)
		}
		return ek, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	keyPEM, err := EncodePrivateKey(key)
	if err != nil {
		return nil, err
	}
	pubPEM, err := wire.EncodeSigningKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, keyPEM); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(dir, signingPubFile), pubPEM); err != nil {
		return nil, err
	}
	return key, nil
}

// loadLeaf loads one of the hub's own certificates, or issues a new one
// (with a new key) when it is missing, not signed by ca, due for renewal,
// or no longer what fits says it should be.
func loadLeaf(opts Options, ca *CA, certFile, keyFile string, fits func(*x509.Certificate) bool, issue func(crypto.PublicKey) (*x509.Certificate, error)) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(opts.Dir, certFile), filepath.Join(opts.Dir, keyFile)
	if pair, cert, err := readPair(certPath, keyPath); err == nil {
		_, verr := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: opts.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if verr == nil && fits(cert) && opts.Now().Add(renewBefore).Before(cert.NotAfter) {
			return pair, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, errUnusablePair) {
		return tls.Certificate{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate key: %w", err)
	}
	cert, err := issue(key.Public())
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := EncodePrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := writeFileAtomic(keyPath, keyPEM); err != nil {
		return tls.Certificate{}, err
	}
	if err := writeFileAtomic(certPath, EncodeCertificate(cert.Raw)); err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, nil
}

// errUnusablePair marks a certificate and key that are there but do not
// make a pair (damaged, or from different issues); they are replaced.
var errUnusablePair = errors.New("certificate and key do not make a usable pair")

func readPair(certPath, keyPath string) (tls.Certificate, *x509.Certificate, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	keyPEM, err := readPrivateFile(keyPath)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("%w: %v", errUnusablePair, err)
	}
	return pair, pair.Leaf, nil
}

func certHosts(cert *x509.Certificate) []string {
	hosts := append([]string(nil), cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	return normalizeHosts(hosts)
}

// MQTTServerTLS is the TLS configuration of the embedded broker's
// listener: the hub's server certificate, and a client certificate signed
// by the hub CA required of every client.
func (c *Credentials) MQTTServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{c.Server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    c.CA.Pool(),
	}
}

// HTTPServerTLS is the TLS configuration of the hub's HTTPS API: a client
// certificate is verified when one is presented (the operator's), but not
// required, since enrolling agents have none yet and the CLI may use a
// token instead.
func (c *Credentials) HTTPServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{c.Server},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    c.CA.Pool(),
	}
}

// HubClientTLS is the TLS configuration of the hub's own MQTT session:
// its client certificate, and the hub CA as the only root.
func (c *Credentials) HubClientTLS(serverName string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{c.HubClient},
		RootCAs:      c.CA.Pool(),
		ServerName:   serverName,
	}
}
