package api

// CertificateSigningRequest is a node's request for its client
// certificate, shaped like Kubernetes' certificates.k8s.io/v1 object of
// that name. The hub creates one for every enrolment; it is approved on
// the spot when the bootstrap token allows it, or waits for `hub
// certificate approve NAME`. Users do not write them.
type CertificateSigningRequest struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       CertificateSigningRequestSpec   `json:"spec"`
	Status     CertificateSigningRequestStatus `json:"status,omitempty"`
}

// CertificateSigningRequestSpec is the request: the PEM-encoded PKCS#10
// request (base64 in JSON, as in Kubernetes), who sent it and what it is
// for.
type CertificateSigningRequestSpec struct {
	Request    []byte   `json:"request"`
	SignerName string   `json:"signerName"`
	Usages     []string `json:"usages,omitempty"`
	// Username is who asked: flotilla:bootstrap:{token id}.
	Username string `json:"username,omitempty"`
	// NodeName is the node the certificate is for (its subject's common
	// name). Flotilla extension.
	NodeName string `json:"nodeName,omitempty"`
	// NodeLabels are the labels the bootstrap token asks for; the hub puts
	// them on the Node when it issues the certificate. Flotilla extension.
	NodeLabels map[string]string `json:"nodeLabels,omitempty"`
	// PendingReason says why the request was not approved on the spot.
	// Flotilla extension.
	PendingReason string `json:"pendingReason,omitempty"`
}

// CertificateSigningRequestStatus holds the decision and, once issued,
// the PEM-encoded certificate.
type CertificateSigningRequestStatus struct {
	Conditions  []CertificateSigningRequestCondition `json:"conditions,omitempty"`
	Certificate []byte                               `json:"certificate,omitempty"`
}

// CertificateSigningRequestCondition is one decision about a request.
type CertificateSigningRequestCondition struct {
	Type               string          `json:"type"`
	Status             ConditionStatus `json:"status"`
	Reason             string          `json:"reason,omitempty"`
	Message            string          `json:"message,omitempty"`
	LastUpdateTime     Time            `json:"lastUpdateTime,omitempty"`
	LastTransitionTime Time            `json:"lastTransitionTime,omitempty"`
}

// Certificate request condition types and the one signer Flotilla has.
const (
	CertificateApproved = "Approved"
	CertificateDenied   = "Denied"
	CertificateFailed   = "Failed"

	SignerNodeClient = "flotilla.io/node-client"

	UsageDigitalSignature = "digital signature"
	UsageClientAuth       = "client auth"
)

// Condition returns the request's condition of type t, or nil.
func (s *CertificateSigningRequestStatus) Condition(t string) *CertificateSigningRequestCondition {
	for i := range s.Conditions {
		if s.Conditions[i].Type == t {
			return &s.Conditions[i]
		}
	}
	return nil
}

// CertificateApproval is the body of
// POST /apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/approval:
// the operator's decision on a pending request.
type CertificateApproval struct {
	TypeMeta `json:",inline"`
	// Decision is Approved or Denied.
	Decision string `json:"decision"`
	Reason   string `json:"reason,omitempty"`
	Message  string `json:"message,omitempty"`
}
