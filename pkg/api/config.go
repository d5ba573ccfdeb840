package api

// Secret holds a little confidential data (passwords, keys, tokens) for
// pods in its namespace, as Kubernetes' core/v1 Secret. Data values are
// bytes (base64 in JSON and YAML); StringData is a write-only convenience
// whose plain strings are merged into Data when the Secret is defaulted,
// winning over a key of the same name in Data. The hub keeps Secrets
// encrypted at rest and sends one only to nodes that run a pod using it.
type Secret struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Data       map[string][]byte `json:"data,omitempty"`
	StringData map[string]string `json:"stringData,omitempty"`
	// Type is Opaque (the default) or one of the Kubernetes types whose
	// required keys are checked: kubernetes.io/tls,
	// kubernetes.io/basic-auth, kubernetes.io/ssh-auth.
	Type string `json:"type,omitempty"`
}

// Secret types.
const (
	SecretTypeOpaque    = "Opaque"
	SecretTypeTLS       = "kubernetes.io/tls"
	SecretTypeBasicAuth = "kubernetes.io/basic-auth"
	SecretTypeSSHAuth   = "kubernetes.io/ssh-auth"
)

// Keys that the typed Secrets require, as in Kubernetes.
const (
	TLSCertKey        = "tls.crt"
	TLSPrivateKeyKey  = "tls.key"
	BasicAuthUsername = "username"
	BasicAuthPassword = "password"
	SSHAuthPrivateKey = "ssh-privatekey"
)

// Size limits and file modes, as in Kubernetes.
const (
	// MaxSecretSize bounds the bytes of a Secret's data, all keys together.
	MaxSecretSize = 1 << 20
	// MaxConfigMapSize bounds the bytes of a ConfigMap's data and
	// binaryData, all keys together.
	MaxConfigMapSize = 1 << 20
	// DefaultVolumeMode is the permission bits of a secret or configMap
	// volume's files unless defaultMode or an item's mode says otherwise.
	DefaultVolumeMode int32 = 0o644
	// MaxVolumeFileMode is the largest mode a file of such a volume may have.
	MaxVolumeFileMode int32 = 0o777
)

// ConfigMap holds non-confidential configuration for pods in its
// namespace, as Kubernetes' core/v1 ConfigMap: UTF-8 strings in Data and
// bytes (base64 in JSON and YAML) in BinaryData, with no key in both.
type ConfigMap struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Data       map[string]string `json:"data,omitempty"`
	BinaryData map[string][]byte `json:"binaryData,omitempty"`
}
