package pki

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Store is the slice of the hub's store the Authority uses; store.Store
// satisfies it.
type Store interface {
	View(fn func(store.Tx) error) error
	Update(fn func(store.Tx) error) error
}

// Errors of the Authority's operations, besides ErrInvalidToken,
// ErrInvalid and the request errors of ca.go.
var (
	// ErrForbidden: the token is good but does not allow this node name.
	ErrForbidden = errors.New("not allowed")
	// ErrNotFound: no such certificate request or token.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyDecided: the request was approved or denied before.
	ErrAlreadyDecided = errors.New("certificate request already decided")
	// ErrRevoked: the certificate was revoked.
	ErrRevoked = errors.New("certificate revoked")
)

// AuthorityOptions configure an Authority.
type AuthorityOptions struct {
	Store       Store
	Credentials *Credentials
	// ManualApproval makes every enrolment wait for `hub certificate
	// approve`. Without it, a request with a good token is approved at
	// once, unless its node name already holds a valid certificate or was
	// revoked: those always wait for an operator, so that a leaked token
	// can neither take over an enrolled node's name nor bring back a
	// revoked one.
	ManualApproval bool
	// NodeValidity is how long node certificates are valid (default a
	// year).
	NodeValidity time.Duration
	// PendingTTL is how long an undecided request waits (default 7 days);
	// DecidedTTL how long a decided one is kept for the agent to collect
	// and the operator to see (default 24 h).
	PendingTTL, DecidedTTL time.Duration
	Now                    func() time.Time
	Logger                 *slog.Logger
}

// Authority enrols nodes, decides their certificate requests and keeps
// the revocation list.
type Authority struct {
	store Store
	creds *Credentials
	opts  AuthorityOptions
	now   func() time.Time
	log   *slog.Logger
}

// NewAuthority returns an Authority.
func NewAuthority(opts AuthorityOptions) (*Authority, error) {
	if opts.Store == nil || opts.Credentials == nil {
		return nil, errors.New("pki: an authority needs a store and credentials")
	}
	if opts.NodeValidity <= 0 {
		opts.NodeValidity = NodeValidity
	}
	if opts.PendingTTL <= 0 {
		opts.PendingTTL = 7 * 24 * time.Hour
	}
	if opts.DecidedTTL <= 0 {
		opts.DecidedTTL = 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Authority{store: opts.Store, creds: opts.Credentials, opts: opts, now: opts.Now, log: opts.Logger.With("component", "pki")}, nil
}

// Enrol handles a node's enrolment request: it checks the token and the
// certificate request, records a CertificateSigningRequest, and either
// issues the certificate at once or leaves the request pending for an
// operator. The token's use is taken either way. Errors wrap
// ErrInvalidToken, ErrForbidden, ErrInvalidRequest (ErrWeakKey,
// ErrInvalidName) or are the store's.
func (a *Authority) Enrol(req api.EnrolRequest) (api.EnrolResponse, error) {
	csr, err := ParseNodeCSR([]byte(req.CSR), req.NodeName)
	if err != nil {
		return api.EnrolResponse{}, err
	}
	now := a.now()
	var obj *api.CertificateSigningRequest
	err = a.store.Update(func(tx store.Tx) error {
		tok, err := a.useToken(tx, req.Token, now)
		if err != nil {
			return err
		}
		if tok.NodeName != "" && tok.NodeName != req.NodeName {
			return fmt.Errorf("%w: token %s enrols node %q only", ErrForbidden, tok.Name, tok.NodeName)
		}
		name, err := a.freeRequestName(tx)
		if err != nil {
			return err
		}
		obj = &api.CertificateSigningRequest{
			TypeMeta:   api.TypeMeta{APIVersion: "certificates.k8s.io/v1", Kind: api.KindCertificateSigningRequest},
			ObjectMeta: api.ObjectMeta{Name: name, UID: api.NewUID(), CreationTimestamp: apiTime(now)},
			Spec: api.CertificateSigningRequestSpec{
				Request:    []byte(req.CSR),
				SignerName: api.SignerNodeClient,
				Usages:     []string{api.UsageDigitalSignature, api.UsageClientAuth},
				Username:   "flotilla:bootstrap:" + tok.Name,
				NodeName:   req.NodeName,
				NodeLabels: tok.Labels,
			},
		}
		reason, err := a.pendingReason(tx, req.NodeName, now)
		if err != nil {
			return err
		}
		if reason != "" {
			obj.Spec.PendingReason = reason
			return tx.PutTTL(obj, a.opts.PendingTTL)
		}
		return a.issue(tx, obj, csr, now, "AutoApproved", "approved with bootstrap token "+tok.Name)
	})
	if err != nil {
		return api.EnrolResponse{}, fmt.Errorf("enrol node %q: %w", req.NodeName, err)
	}
	if obj.Spec.PendingReason != "" {
		a.log.Info("certificate request waits for approval", "node", req.NodeName, "request", obj.Name, "reason", obj.Spec.PendingReason)
	} else {
		a.log.Info("node enrolled", "node", req.NodeName, "request", obj.Name)
	}
	return a.response(obj), nil
}

// pendingReason says why a request for node must wait for an operator, or
// "" if it may be approved at once.
func (a *Authority) pendingReason(tx store.Tx, node string, now time.Time) (string, error) {
	if a.opts.ManualApproval {
		return "the hub approves certificates manually", nil
	}
	cred, err := store.Get[NodeCredential](tx, "", node)
	if store.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if !cred.RevokedAt.IsZero() {
		return fmt.Sprintf("node %s was revoked on %s", node, cred.RevokedAt.UTC().Format(time.RFC3339)), nil
	}
	for _, c := range cred.Certificates {
		if c.Revoked.IsZero() && now.Before(c.NotAfter.Time) {
			return fmt.Sprintf("node %s already holds a valid certificate (serial %s)", node, c.Serial), nil
		}
	}
	return "", nil
}

func (a *Authority) freeRequestName(tx store.Tx) (string, error) {
	for range 16 {
		s, err := randomString(8)
		if err != nil {
			return "", err
		}
		name := "csr-" + s
		if _, err := tx.Get(store.Key{Kind: api.KindCertificateSigningRequest, Name: name}); store.IsNotFound(err) {
			return name, nil
		} else if err != nil {
			return "", err
		}
	}
	return "", errors.New("no free certificate request name after 16 tries")
}

// issue signs obj's request, records the certificate on the node's
// credential, puts the token's labels on the Node (creating it, so that an
// enrolled node is listed before it first connects), and marks obj
// approved. It runs inside tx.
func (a *Authority) issue(tx store.Tx, obj *api.CertificateSigningRequest, csr *x509.CertificateRequest, now time.Time, reason, message string) error {
	cert, err := a.creds.CA.SignNodeCSR(csr, a.opts.NodeValidity)
	if err != nil {
		return err
	}
	node := obj.Spec.NodeName
	cred, err := store.Get[NodeCredential](tx, "", node)
	if store.IsNotFound(err) {
		cred = &NodeCredential{TypeMeta: api.TypeMeta{Kind: KindNodeCredential}, ObjectMeta: api.ObjectMeta{Name: node}}
	} else if err != nil {
		return err
	}
	// Expired certificates need no revocation entry any more.
	cred.Certificates = slices.DeleteFunc(cred.Certificates, func(c IssuedCertificate) bool { return now.After(c.NotAfter.Time) })
	cred.Certificates = append(cred.Certificates, IssuedCertificate{
		Serial: SerialString(cert.SerialNumber), NotBefore: api.NewTime(cert.NotBefore), NotAfter: api.NewTime(cert.NotAfter), Request: obj.Name,
	})
	if err := tx.Put(cred); err != nil {
		return err
	}
	if err := a.labelNode(tx, node, obj.Spec.NodeLabels, now); err != nil {
		return err
	}
	setCondition(&obj.Status, api.CertificateApproved, reason, message, now)
	obj.Status.Certificate = EncodeCertificate(cert.Raw)
	obj.Spec.PendingReason = ""
	return tx.PutTTL(obj, a.opts.DecidedTTL)
}

func (a *Authority) labelNode(tx store.Tx, name string, labels map[string]string, now time.Time) error {
	node, err := store.Get[api.Node](tx, "", name)
	if store.IsNotFound(err) {
		node = &api.Node{
			TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindNode},
			ObjectMeta: api.ObjectMeta{Name: name, UID: api.NewUID(), CreationTimestamp: apiTime(now)},
		}
	} else if err != nil {
		return err
	} else if len(labels) == 0 {
		return nil
	}
	if len(labels) > 0 && node.Labels == nil {
		node.Labels = make(map[string]string, len(labels))
	}
	for k, v := range labels {
		node.Labels[k] = v
	}
	return tx.Put(node)
}

func setCondition(st *api.CertificateSigningRequestStatus, typ, reason, message string, now time.Time) {
	t := apiTime(now)
	st.Conditions = append(st.Conditions, api.CertificateSigningRequestCondition{
		Type: typ, Status: api.ConditionTrue, Reason: reason, Message: message, LastUpdateTime: t, LastTransitionTime: t,
	})
}

func decided(obj *api.CertificateSigningRequest) bool {
	return obj.Status.Condition(api.CertificateApproved) != nil || obj.Status.Condition(api.CertificateDenied) != nil
}

// Poll answers an agent asking after its request.
func (a *Authority) Poll(name string) (api.EnrolResponse, error) {
	var obj *api.CertificateSigningRequest
	err := a.store.View(func(tx store.Tx) error {
		var err error
		obj, err = store.Get[api.CertificateSigningRequest](tx, "", name)
		return err
	})
	if store.IsNotFound(err) {
		return api.EnrolResponse{}, fmt.Errorf("certificate request %q: %w", clip(name), ErrNotFound)
	}
	if err != nil {
		return api.EnrolResponse{}, fmt.Errorf("certificate request %q: %w", clip(name), err)
	}
	return a.response(obj), nil
}

// response is what the agent learns about its request.
func (a *Authority) response(obj *api.CertificateSigningRequest) api.EnrolResponse {
	r := api.EnrolResponse{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: "EnrolResponse"}, Name: obj.Name}
	switch {
	case obj.Status.Condition(api.CertificateDenied) != nil:
		c := obj.Status.Condition(api.CertificateDenied)
		r.Status, r.Message = api.EnrolDenied, c.Message
	case len(obj.Status.Certificate) > 0:
		r.Status = api.EnrolIssued
		r.Certificate = string(obj.Status.Certificate)
		r.CA = string(a.creds.CA.PEM)
		r.SigningKey = string(a.creds.SigningKeyPEM)
	default:
		r.Status, r.Message = api.EnrolPending, obj.Spec.PendingReason
	}
	return r
}

// Approve issues the certificate of a pending request.
func (a *Authority) Approve(name, reason, message string) (*api.CertificateSigningRequest, error) {
	if reason == "" {
		reason = "OperatorApproved"
	}
	return a.decide(name, func(tx store.Tx, obj *api.CertificateSigningRequest, now time.Time) error {
		csr, err := ParseNodeCSR(obj.Spec.Request, obj.Spec.NodeName)
		if err != nil {
			return err
		}
		return a.issue(tx, obj, csr, now, reason, message)
	})
}

// Deny refuses a pending request.
func (a *Authority) Deny(name, reason, message string) (*api.CertificateSigningRequest, error) {
	if reason == "" {
		reason = "OperatorDenied"
	}
	return a.decide(name, func(tx store.Tx, obj *api.CertificateSigningRequest, now time.Time) error {
		setCondition(&obj.Status, api.CertificateDenied, reason, message, now)
		obj.Spec.PendingReason = ""
		return tx.PutTTL(obj, a.opts.DecidedTTL)
	})
}

func (a *Authority) decide(name string, fn func(store.Tx, *api.CertificateSigningRequest, time.Time) error) (*api.CertificateSigningRequest, error) {
	now := a.now()
	var obj *api.CertificateSigningRequest
	err := a.store.Update(func(tx store.Tx) error {
		var err error
		obj, err = store.Get[api.CertificateSigningRequest](tx, "", name)
		if store.IsNotFound(err) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if decided(obj) {
			return ErrAlreadyDecided
		}
		return fn(tx, obj, now)
	})
	if err != nil {
		return nil, fmt.Errorf("certificate request %q: %w", clip(name), err)
	}
	a.log.Info("certificate request decided", "request", name, "node", obj.Spec.NodeName, "approved", obj.Status.Condition(api.CertificateApproved) != nil)
	return obj, nil
}

// Revoke revokes every certificate issued to node and marks the node
// revoked, so that its certificates are refused at connect and a new
// enrolment under its name needs an operator's approval. It returns how
// many certificates it revoked. Revoking a node the hub has no record of
// still refuses any certificate for its name that began before now.
func (a *Authority) Revoke(node string) (int, error) {
	if err := ValidateNodeName(node); err != nil {
		return 0, err
	}
	now := a.now()
	n := 0
	err := a.store.Update(func(tx store.Tx) error {
		cred, err := store.Get[NodeCredential](tx, "", node)
		if store.IsNotFound(err) {
			cred = &NodeCredential{TypeMeta: api.TypeMeta{Kind: KindNodeCredential}, ObjectMeta: api.ObjectMeta{Name: node}}
		} else if err != nil {
			return err
		}
		// Not truncated: a certificate issued within the same second
		// after the revocation must not count as before it.
		cred.RevokedAt = api.NewTime(now.UTC())
		for i := range cred.Certificates {
			if cred.Certificates[i].Revoked.IsZero() {
				cred.Certificates[i].Revoked = cred.RevokedAt
				n++
			}
		}
		return tx.Put(cred)
	})
	if err != nil {
		return 0, fmt.Errorf("revoke node %s: %w", node, err)
	}
	a.log.Warn("node revoked", "node", node, "certificates", n)
	return n, nil
}

// CheckCertificate refuses a client certificate that was revoked (wrapping
// ErrRevoked). The hub's own identities are not node certificates and
// pass. It does not verify the chain: TLS did.
func (a *Authority) CheckCertificate(cert *x509.Certificate) error {
	cn := cert.Subject.CommonName
	if cn == HubIdentity || cn == AdminIdentity {
		return nil
	}
	var cred *NodeCredential
	err := a.store.View(func(tx store.Tx) error {
		var err error
		cred, err = store.Get[NodeCredential](tx, "", cn)
		return err
	})
	if store.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check certificate of %s: %w", cn, err)
	}
	return cred.check(cert.SerialNumber, cert.NotBefore)
}

// check applies the revocation list of one node to a certificate.
func (c *NodeCredential) check(serial *big.Int, notBefore time.Time) error {
	s := SerialString(serial)
	for _, ic := range c.Certificates {
		if ic.Serial == s {
			if !ic.Revoked.IsZero() {
				return fmt.Errorf("%w: node %s, serial %s, on %s", ErrRevoked, c.Name, s, ic.Revoked.UTC().Format(time.RFC3339))
			}
			return nil
		}
	}
	if !c.RevokedAt.IsZero() && notBefore.Before(c.RevokedAt.Time) {
		return fmt.Errorf("%w: node %s was revoked on %s, and serial %s is older", ErrRevoked, c.Name, c.RevokedAt.UTC().Format(time.RFC3339), s)
	}
	return nil
}

// RevokedSerial is one entry of the revocation list.
type RevokedSerial struct {
	Node, Serial string
	Revoked      time.Time
}

// RevocationList returns every revoked certificate that has not expired.
func (a *Authority) RevocationList() ([]RevokedSerial, error) {
	var creds []*NodeCredential
	err := a.store.View(func(tx store.Tx) error {
		var err error
		creds, err = store.List[NodeCredential](tx, "")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("revocation list: %w", err)
	}
	now := a.now()
	var out []RevokedSerial
	for _, c := range creds {
		for _, ic := range c.Certificates {
			if !ic.Revoked.IsZero() && now.Before(ic.NotAfter.Time) {
				out = append(out, RevokedSerial{Node: c.Name, Serial: ic.Serial, Revoked: ic.Revoked.Time})
			}
		}
	}
	return out, nil
}

// CRLValidity is how long a CRL from CRL is valid (its NextUpdate).
const CRLValidity = 7 * 24 * time.Hour

// CRL returns the revocation list as a PEM X.509 CRL signed by the hub CA,
// for an external broker (Mosquitto's crlfile, EMQX's CRL settings) that
// cannot ask the hub. number must grow with every CRL issued; the time in
// seconds does.
func (a *Authority) CRL() ([]byte, error) {
	list, err := a.RevocationList()
	if err != nil {
		return nil, err
	}
	now := a.now()
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(now.Unix()),
		ThisUpdate: now.Add(-backdate),
		NextUpdate: now.Add(CRLValidity),
	}
	for _, r := range list {
		serial, ok := new(big.Int).SetString(r.Serial, 16)
		if !ok {
			return nil, fmt.Errorf("revocation list: serial %q is not hex", r.Serial)
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: serial, RevocationTime: r.Revoked})
	}
	ca := a.creds.CA
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign CRL: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), nil
}

// CRLFile is where the hub keeps its CRL, in its PKI directory, for an
// external broker to read (Mosquitto's crlfile).
const CRLFile = "revoked.crl"

// WriteCRL writes CRL's list to path, atomically (mode 0600), so that a
// broker reading it sees the old list or the new one.
func (a *Authority) WriteCRL(path string) error {
	b, err := a.CRL()
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b)
}
