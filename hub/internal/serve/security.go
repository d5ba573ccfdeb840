package serve

// The hub's security wiring: keys and certificates (hub/internal/pki),
// the secrets box (hub/internal/secrets), the operator's client file and
// the HTTP API's authentication. docs/security.md describes the design.

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/flotilla-edge/flotilla/hub/internal/pki"
	"github.com/flotilla-edge/flotilla/hub/internal/secrets"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Files in the data directory besides the store.
const (
	// SecretsKeyFile holds the key that seals Secrets in the store.
	SecretsKeyFile = "secrets.key"
	// AdminConfigFile is the operator's client configuration: the hub's
	// URL, its CA and an administrator's token. It is a `hub --config`
	// file (keys are the CLI's flag names).
	AdminConfigFile = "admin.conf"
	pkiDir          = "pki"
)

// openSecretsCodec loads (or creates) the secrets key and returns the
// store codec that seals Secrets with it.
func openSecretsCodec(dataDir string) (*secrets.RecordCodec, error) {
	key, err := secrets.LoadOrCreateKey(filepath.Join(dataDir, SecretsKeyFile))
	if err != nil {
		return nil, err
	}
	box, err := secrets.NewBox(key)
	if err != nil {
		return nil, err
	}
	return secrets.NewRecordCodec(box, api.KindSecret), nil
}

// AdminConfig is the content of AdminConfigFile.
type AdminConfig struct {
	Server string `json:"server"`
	// CertificateAuthorityData is the hub CA, PEM, base64 (as kubeconfig
	// carries it).
	CertificateAuthorityData string `json:"certificate-authority-data"`
	Token                    string `json:"token"`
}

// writeAdminConfig writes the operator's client file, keeping the token
// of an existing one, and returns the token. The file is 0600: the token
// is an administrator's.
func writeAdminConfig(dataDir, server string, caPEM []byte) (string, error) {
	path := filepath.Join(dataDir, AdminConfigFile)
	var cfg AdminConfig
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := yaml.Unmarshal(b, &cfg); err != nil {
			return "", fmt.Errorf("read %s: %w (remove it to get a new one)", path, err)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			return "", fmt.Errorf("%s (mode %04o) is accessible to other users; chmod 600 it", path, fi.Mode().Perm())
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(cfg.Token) < 32 {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return "", err
		}
		cfg.Token = base64.RawURLEncoding.EncodeToString(raw)
	}
	cfg.Server = server
	cfg.CertificateAuthorityData = base64.StdEncoding.EncodeToString(caPEM)
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	out = append([]byte("# Written by `hub serve`: use it with `hub --config "+path+" ...` or FLOTILLA_CONFIG.\n# Keep it secret: the token is an administrator's.\n"), out...)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return cfg.Token, nil
}

// clientURL is the URL a client on this machine reaches addr at.
func clientURL(scheme, addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return scheme + "://" + addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// authenticator admits requests with the administrator's token (Bearer)
// or a client certificate of the hub CA naming pki.AdminIdentity.
type authenticator struct {
	tokenHash [32]byte
}

func newAuthenticator(token string) *authenticator {
	return &authenticator{tokenHash: sha256.Sum256([]byte(token))}
}

func (a *authenticator) ok(r *http.Request) bool {
	_, ok := a.authenticate(r)
	return ok
}

// authenticate says who made r and whether the API admits them: the
// administrator (the token, or a certificate for pki.AdminIdentity) is
// admitted; anyone else with a certificate of the hub CA (a node, the
// hub's own client) is known by its name but not admitted, so that the
// answer is 403, as Kubernetes answers an authenticated user it does not
// authorize; anyone else is unknown ("") and gets 401.
func (a *authenticator) authenticate(r *http.Request) (user string, admitted bool) {
	// A certificate first, then a token, as Kubernetes tries them: either
	// proving the administrator is enough.
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.PeerCertificates) > 0 {
		user = r.TLS.PeerCertificates[0].Subject.CommonName
		if user == pki.AdminIdentity {
			return user, true
		}
	}
	if tok, ok := bearerToken(r.Header.Get("Authorization")); ok {
		h := sha256.Sum256([]byte(tok))
		if subtle.ConstantTimeCompare(h[:], a.tokenHash[:]) == 1 {
			return pki.AdminIdentity, true
		}
	}
	return user, false
}

// bearerToken reads "Authorization: Bearer TOKEN". The scheme is
// case-insensitive and one or more spaces follow it (RFC 7235 §2.1), so
// "bearer TOKEN" is as good as "Bearer TOKEN".
func bearerToken(header string) (string, bool) {
	scheme, rest, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok := strings.TrimSpace(rest)
	return tok, tok != ""
}

// wrap refuses unauthenticated requests with 401 and requests of anyone
// but the administrator with 403, except the health check.
func (a *authenticator) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		user, admitted := a.authenticate(r)
		if admitted {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		st := api.Status{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: api.StatusFailure}
		if user != "" {
			st.Reason, st.Code = api.ReasonForbidden, http.StatusForbidden
			st.Message = fmt.Sprintf("User %q cannot %s %s: the hub's API admits its administrator only "+
				"(the token of {data-dir}/%s, or a client certificate for %s)", user, strings.ToLower(r.Method), r.URL.Path, AdminConfigFile, pki.AdminIdentity)
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer realm="flotilla"`)
			st.Reason, st.Code = "Unauthorized", http.StatusUnauthorized
			st.Message = "this hub requires credentials: use `hub --config {data-dir}/" + AdminConfigFile + "` (or FLOTILLA_CONFIG), or --token; " +
				"for kubectl, the kubeconfig `hub kubeconfig` writes"
		}
		w.WriteHeader(st.Code)
		_ = json.NewEncoder(w).Encode(st)
	})
}

// apiHandler routes the enrolment endpoint (authenticated by its token),
// the PKI's operator endpoints and the API (both behind auth, when auth is
// not nil).
func apiHandler(apiH http.Handler, authority *pki.Authority, onRevoke func(string), auth *authenticator) http.Handler {
	admin := authority.AdminHandler(onRevoke)
	protected := http.NewServeMux()
	protected.Handle(api.TokensPath, admin)
	protected.Handle(api.TokensPath+"/", admin)
	protected.Handle("POST /api/v1/nodes/{name}/revoke", admin)
	protected.Handle("POST /apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/approval", admin)
	protected.Handle("/", apiH)
	var inner http.Handler = protected
	if auth != nil {
		inner = auth.wrap(protected)
	}
	mux := http.NewServeMux()
	enrol := authority.EnrolHandler()
	mux.Handle(api.EnrolPath, enrol)
	mux.Handle(api.EnrolPath+"/", enrol)
	mux.Handle("/", inner)
	return mux
}
