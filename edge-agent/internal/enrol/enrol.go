// Package enrol gives a board its identity. On first start the agent
// generates its private key on the board (it never leaves it), sends a
// certificate request with a bootstrap token to the hub over HTTPS,
// trusting the hub only if the CA it presents has the fingerprint the
// operator gave, and keeps what comes back: its client certificate, the
// hub CA and the hub's snapshot-signing key. Later starts load them.
package enrol

// Files in Config.Dir (mode 0700; every file 0600):
//
//	node.key         the node's ECDSA P-256 key, PKCS#8 PEM, made here
//	node.crt         its client certificate (CN = node name); written last,
//	                 so its presence means "enrolled"
//	ca.crt           the hub CA, the only root for the MQTT connection
//	hub-signing.pub  the hub's Ed25519 snapshot-signing key, PKIX PEM
//	request.json     the name of a request waiting for approval, so that a
//	                 restarted agent keeps waiting for it instead of
//	                 spending another token
//
// Renewal is future work: a certificate is valid for a year, and an agent
// whose certificate expired must be enrolled again.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/link"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// File names in the identity directory.
const (
	keyFile        = "node.key"
	certFile       = "node.crt"
	caFile         = "ca.crt"
	signingKeyFile = "hub-signing.pub"
	requestFile    = "request.json"
)

// Errors. Enrol retries what may pass (the hub unreachable or failing);
// these it returns.
var (
	// ErrNotEnrolled: there is no identity in the directory yet.
	ErrNotEnrolled = errors.New("the node is not enrolled")
	// ErrPinMismatch: the hub presented no CA with the pinned fingerprint.
	ErrPinMismatch = errors.New("the hub's CA does not match the pinned fingerprint")
	// ErrInvalidToken: the hub refused the bootstrap token.
	ErrInvalidToken = errors.New("the hub refused the bootstrap token (unknown, expired or used up)")
	// ErrDenied: an operator denied the request.
	ErrDenied = errors.New("the hub denied the certificate request")
	// ErrRefused: the hub refused the request for another reason (the
	// node name, the token's scope).
	ErrRefused = errors.New("the hub refused the enrolment")
	// ErrBadResponse: what the hub sent back is not a usable identity.
	ErrBadResponse = errors.New("the hub's answer is not a usable identity")
	// ErrInvalidIdentity: the files in the directory do not make a valid
	// identity for this node.
	ErrInvalidIdentity = errors.New("the stored identity is not valid")
)

// Config configures Enrol.
type Config struct {
	// Hub is the hub's HTTPS base URL, such as https://hub.example:8443.
	Hub string
	// Token is the bootstrap token.
	Token string
	// CAFingerprint pins the hub CA ("sha256:…", as `hub token create`
	// prints it).
	CAFingerprint string
	NodeName      string
	// Dir keeps the identity ({state-dir}/pki).
	Dir string
	// PollInterval is how often a waiting request is asked after
	// (default 15 s).
	PollInterval time.Duration
	// Timeout bounds each HTTP request (default 30 s).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Identity is what a node proves itself and checks the hub with.
type Identity struct {
	NodeName string
	// Certificate is the node's client certificate and key.
	Certificate tls.Certificate
	CA          *x509.Certificate
	// SigningKey verifies the hub's snapshots.
	SigningKey ed25519.PublicKey
}

// TLSConfig is the configuration of the MQTT connection: the node's
// certificate, and the hub CA as the only root. serverName is the
// broker's host name as the certificate names it.
func (id *Identity) TLSConfig(serverName string) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(id.CA)
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{id.Certificate},
		RootCAs:      pool,
		ServerName:   serverName,
	}
}

// Verifier returns the verifier of this node's snapshots.
func (id *Identity) Verifier() (*wire.Verifier, error) {
	return wire.NewVerifier(id.NodeName, id.SigningKey)
}

// Load reads node's identity from dir. Without one it returns an error
// wrapping ErrNotEnrolled; with one that does not hold together (a key
// that is not the certificate's, a certificate for another node or from
// another CA, an expired one) it wraps ErrInvalidIdentity.
func Load(dir, node string) (*Identity, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, certFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotEnrolled
	}
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	keyPEM, err := readPrivate(filepath.Join(dir, keyFile))
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, caFile))
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	sigPEM, err := os.ReadFile(filepath.Join(dir, signingKeyFile))
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	id, err := assemble(node, certPEM, keyPEM, caPEM, sigPEM, time.Now())
	if err != nil {
		return nil, fmt.Errorf("load identity from %s: %w", dir, err)
	}
	return id, nil
}

// assemble checks that the parts make node's identity.
func assemble(node string, certPEM, keyPEM, caPEM, sigPEM []byte, now time.Time) (*Identity, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate and key: %v", ErrInvalidIdentity, err)
	}
	ca, err := parseCertificate(caPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: CA: %v", ErrInvalidIdentity, err)
	}
	leaf := pair.Leaf
	if cn := leaf.Subject.CommonName; cn != node {
		return nil, fmt.Errorf("%w: the certificate is for node %q, not %q", ErrInvalidIdentity, cn, node)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidIdentity, err)
	}
	sig, err := wire.ParseSigningKey(sigPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidIdentity, err)
	}
	return &Identity{NodeName: node, Certificate: pair, CA: ca, SigningKey: sig}, nil
}

// Enrol returns the node's identity: the one in cfg.Dir, or a new one
// from the hub. It waits, polling, while the request waits for an
// operator, and retries with back-off while the hub cannot be reached;
// it returns when it has an identity, when the hub refuses (see the
// errors above), or when ctx ends.
func Enrol(ctx context.Context, cfg Config) (*Identity, error) {
	id, err := Load(cfg.Dir, cfg.NodeName)
	if !errors.Is(err, ErrNotEnrolled) {
		return id, err
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 15 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.NodeName == "" || cfg.Hub == "" || cfg.Token == "" || cfg.CAFingerprint == "" {
		return nil, fmt.Errorf("%w: enrolment needs the node name, the hub's URL, a bootstrap token and the CA fingerprint", ErrNotEnrolled)
	}
	pin, err := api.ParseCAFingerprint(cfg.CAFingerprint)
	if err != nil {
		return nil, err
	}
	base, err := url.Parse(strings.TrimRight(cfg.Hub, "/"))
	if err != nil || base.Scheme != "https" || base.Host == "" {
		return nil, fmt.Errorf("hub URL %q: enrolment needs https://host[:port]", cfg.Hub)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("enrol: %w", err)
	}
	if err := os.Chmod(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("enrol: %w", err)
	}
	key, err := loadOrCreateKey(filepath.Join(cfg.Dir, keyFile))
	if err != nil {
		return nil, err
	}
	e := &enroller{cfg: cfg, base: base.String(), pin: pin, key: key, client: pinnedClient(pin, cfg.Timeout), log: cfg.Logger.With("component", "enrol", "hub", base.Host)}
	return e.run(ctx)
}

type enroller struct {
	cfg    Config
	base   string
	pin    []byte
	key    crypto.Signer
	client *http.Client
	log    *slog.Logger
}

// pendingRequest is request.json.
type pendingRequest struct {
	Name string `json:"name"`
	Hub  string `json:"hub"`
}

func (e *enroller) run(ctx context.Context) (*Identity, error) {
	reqPath := filepath.Join(e.cfg.Dir, requestFile)
	var pending pendingRequest
	if b, err := os.ReadFile(reqPath); err == nil {
		if json.Unmarshal(b, &pending) != nil || pending.Hub != e.base {
			pending = pendingRequest{}
		}
	}
	for attempt := 0; ; attempt++ {
		var resp api.EnrolResponse
		var err error
		if pending.Name == "" {
			resp, err = e.submit(ctx)
		} else {
			resp, err = e.poll(ctx, pending.Name)
			if errors.Is(err, errGone) {
				// The hub forgot the request (it expired); ask again.
				e.log.Warn("the hub no longer knows the certificate request; sending a new one", "request", pending.Name)
				_ = os.Remove(reqPath)
				pending = pendingRequest{}
				continue
			}
		}
		var wait time.Duration
		switch {
		case err == nil && resp.Status == api.EnrolIssued:
			id, err := e.keep(resp)
			if err != nil {
				return nil, err
			}
			_ = os.Remove(reqPath)
			e.log.Info("enrolled", "node", e.cfg.NodeName, "request", resp.Name, "expires", id.Certificate.Leaf.NotAfter)
			return id, nil
		case err == nil && resp.Status == api.EnrolDenied:
			_ = os.Remove(reqPath)
			return nil, fmt.Errorf("%w: %s", ErrDenied, resp.Message)
		case err == nil && resp.Status == api.EnrolPending:
			if pending.Name != resp.Name {
				pending = pendingRequest{Name: resp.Name, Hub: e.base}
				b, _ := json.Marshal(pending)
				if err := writeFileAtomic(reqPath, b); err != nil {
					return nil, err
				}
				e.log.Warn("certificate request waits for an operator: hub certificate approve "+resp.Name, "reason", resp.Message)
			}
			attempt, wait = -1, e.cfg.PollInterval
		case err == nil:
			err = fmt.Errorf("%w: status %q", ErrBadResponse, resp.Status)
			return nil, err
		case isPermanent(err):
			return nil, err
		default:
			wait = link.Backoff(attempt+1, time.Second, time.Minute)
			e.log.Warn("cannot enrol yet; retrying", "in", wait.Round(time.Millisecond), "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("enrol: %w", ctx.Err())
		case <-time.After(wait):
		}
	}
}

func isPermanent(err error) bool {
	for _, e := range []error{ErrPinMismatch, ErrInvalidToken, ErrDenied, ErrRefused, ErrBadResponse} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// errGone: the hub does not know the request polled.
var errGone = errors.New("certificate request not found")

func (e *enroller) submit(ctx context.Context) (api.EnrolResponse, error) {
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: e.cfg.NodeName}}, e.key)
	if err != nil {
		return api.EnrolResponse{}, fmt.Errorf("certificate request: %w", err)
	}
	body, err := json.Marshal(api.EnrolRequest{
		TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: "EnrolRequest"},
		Token:    e.cfg.Token, NodeName: e.cfg.NodeName,
		CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})),
	})
	if err != nil {
		return api.EnrolResponse{}, err
	}
	return e.do(ctx, http.MethodPost, e.base+api.EnrolPath, body)
}

func (e *enroller) poll(ctx context.Context, name string) (api.EnrolResponse, error) {
	return e.do(ctx, http.MethodGet, e.base+api.EnrolPath+"/"+url.PathEscape(name), nil)
}

// maxResponse bounds the hub's answer: three PEM blocks.
const maxResponse = 256 << 10

func (e *enroller) do(ctx context.Context, method, u string, body []byte) (api.EnrolResponse, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return api.EnrolResponse{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrPinMismatch) {
			return api.EnrolResponse{}, fmt.Errorf("%s %s: %w", method, u, ErrPinMismatch)
		}
		return api.EnrolResponse{}, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return api.EnrolResponse{}, fmt.Errorf("%s %s: %w", method, u, err)
	}
	if len(b) > maxResponse {
		return api.EnrolResponse{}, fmt.Errorf("%s %s: %w: answer over %d bytes", method, u, ErrBadResponse, maxResponse)
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated, http.StatusAccepted, http.StatusForbidden:
		var out api.EnrolResponse
		if err := json.Unmarshal(b, &out); err == nil && out.Status != "" {
			return out, nil
		}
		if resp.StatusCode != http.StatusForbidden {
			return api.EnrolResponse{}, fmt.Errorf("%s %s: %w: %s", method, u, ErrBadResponse, clip(b))
		}
		return api.EnrolResponse{}, fmt.Errorf("%w: %s", ErrRefused, statusMessage(b))
	case http.StatusUnauthorized:
		return api.EnrolResponse{}, ErrInvalidToken
	case http.StatusNotFound:
		if method == http.MethodGet {
			return api.EnrolResponse{}, errGone
		}
		return api.EnrolResponse{}, fmt.Errorf("%s %s: %w: the hub has no enrolment endpoint there", method, u, ErrRefused)
	case http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusRequestEntityTooLarge:
		return api.EnrolResponse{}, fmt.Errorf("%w: %s", ErrRefused, statusMessage(b))
	}
	return api.EnrolResponse{}, fmt.Errorf("%s %s: HTTP %d: %s", method, u, resp.StatusCode, statusMessage(b))
}

func statusMessage(b []byte) string {
	var st api.Status
	if json.Unmarshal(b, &st) == nil && st.Message != "" {
		return st.Message
	}
	return clip(b)
}

func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// keep checks an Issued answer and saves it.
func (e *enroller) keep(resp api.EnrolResponse) (*Identity, error) {
	ca, err := parseCertificate([]byte(resp.CA))
	if err != nil {
		return nil, fmt.Errorf("%w: CA: %v", ErrBadResponse, err)
	}
	// The CA in the answer is the one the connection was pinned to.
	if !bytes.Equal(fingerprint(ca.Raw), e.pin) {
		return nil, fmt.Errorf("%w: the answer's CA is not the pinned one", ErrBadResponse)
	}
	keyPEM, err := readPrivate(filepath.Join(e.cfg.Dir, keyFile))
	if err != nil {
		return nil, err
	}
	id, err := assemble(e.cfg.NodeName, []byte(resp.Certificate), keyPEM, []byte(resp.CA), []byte(resp.SigningKey), time.Now())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	// The certificate last: it marks the identity complete.
	for _, f := range []struct {
		name string
		data []byte
	}{
		{caFile, []byte(resp.CA)}, {signingKeyFile, []byte(resp.SigningKey)}, {certFile, []byte(resp.Certificate)},
	} {
		if err := writeFileAtomic(filepath.Join(e.cfg.Dir, f.name), f.data); err != nil {
			return nil, err
		}
	}
	return id, nil
}

// loadOrCreateKey returns the node's key, generating and saving it first
// if there is none. A request pending over a restart keeps its key.
func loadOrCreateKey(path string) (crypto.Signer, error) {
	b, err := readPrivate(path)
	if err == nil {
		block, _ := pem.Decode(b)
		if block == nil || block.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("%s: %w: no PEM PRIVATE KEY block", path, ErrInvalidIdentity)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w: %v", path, ErrInvalidIdentity, err)
		}
		signer, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%s: %w: %T cannot sign", path, ErrInvalidIdentity, k)
		}
		return signer, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate node key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return nil, err
	}
	return key, nil
}

func parseCertificate(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// readPrivate reads a file that holds a private key, refusing one that
// others can access.
func readPrivate(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s (mode %04o) is accessible to other users; chmod 600 it", path, fi.Mode().Perm())
	}
	return os.ReadFile(path)
}

// writeFileAtomic writes data to path, mode 0600, through a synced
// temporary file and a rename.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err == nil {
		if _, err = f.Write(data); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
