package cli

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-edge/flotilla/hub/internal/serve"
	"github.com/flotilla-edge/flotilla/pkg/config"
)

// kubeconfig is the part of kubectl's client configuration file that
// `hub kubeconfig` writes: one cluster, one user, one context.
type kubeconfig struct {
	APIVersion     string            `json:"apiVersion"`
	Kind           string            `json:"kind"`
	Clusters       []kubeconfigNamed `json:"clusters"`
	Users          []kubeconfigNamed `json:"users"`
	Contexts       []kubeconfigNamed `json:"contexts"`
	CurrentContext string            `json:"current-context"`
}

// kubeconfigNamed is a named cluster, user or context entry.
type kubeconfigNamed struct {
	Name    string             `json:"name"`
	Cluster *kubeconfigCluster `json:"cluster,omitempty"`
	User    *kubeconfigUser    `json:"user,omitempty"`
	Context *kubeconfigContext `json:"context,omitempty"`
}

type kubeconfigCluster struct {
	Server                   string `json:"server"`
	CertificateAuthorityData string `json:"certificate-authority-data,omitempty"`
}

type kubeconfigUser struct {
	Token string `json:"token,omitempty"`
}

type kubeconfigContext struct {
	Cluster   string `json:"cluster"`
	User      string `json:"user"`
	Namespace string `json:"namespace,omitempty"`
}

func newKubeconfigCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kubeconfig",
		Short: "Print (or -o FILE write) a kubeconfig for kubectl and client-go: the hub's URL, CA and administrator token",
		Long: `kubeconfig prints a kubectl configuration for this hub: its URL, its CA and the
administrator's token, taken from the hub's admin.conf (--data-dir of the hub,
or the --config / FLOTILLA_CONFIG file the other commands use).

  hub kubeconfig --data-dir /var/lib/flotilla-hub -o ~/.kube/flotilla
  KUBECONFIG=~/.kube/flotilla kubectl get nodes

Keep the file secret: the token is an administrator's. To add the context to
an existing kubeconfig: KUBECONFIG=~/.kube/config:~/.kube/flotilla kubectl config view --flatten.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			dataDir, _ := f.GetString("data-dir")
			out, _ := f.GetString("output")
			name, _ := f.GetString("name")
			overwrite, _ := f.GetBool("overwrite")
			server, token, caPEM := e.server, e.token, e.caPEM
			if dataDir != "" {
				admin, err := readAdminConfig(dataDir)
				if err != nil {
					return err
				}
				token = admin.Token
				if caPEM, err = base64.StdEncoding.DecodeString(admin.CertificateAuthorityData); err != nil {
					return fmt.Errorf("%s: certificate-authority-data is not base64: %w", filepath.Join(dataDir, serve.AdminConfigFile), err)
				}
				if !config.Given(e.v, cmd.Flags(), "server") {
					server = admin.Server
				}
			}
			if strings.HasPrefix(server, "https://") && token == "" {
				return fmt.Errorf("no administrator token for %s: give the hub's --data-dir (its admin.conf has one), or --config {data-dir}/%s", server, serve.AdminConfigFile)
			}
			b, err := yaml.Marshal(newKubeconfig(name, server, token, caPEM, e.namespace))
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err := e.out.Write(b)
				return err
			}
			if err := writeSecretFile(out, b, overwrite); err != nil {
				return err
			}
			fmt.Fprintf(e.errOut, "wrote %s: KUBECONFIG=%s kubectl get nodes\n", out, out)
			return nil
		},
	}
	f := cmd.Flags()
	f.String("data-dir", "", "the hub's data directory, to read its admin.conf (default: the --config file's settings)")
	f.StringP("output", "o", "", "write the kubeconfig to this file (mode 0600) instead of printing it")
	f.String("name", "flotilla", "name of the cluster, user and context in the kubeconfig")
	f.Bool("overwrite", false, "replace the -o file if it exists")
	return cmd
}

func newKubeconfig(name, server, token string, caPEM []byte, namespace string) kubeconfig {
	cluster := &kubeconfigCluster{Server: server}
	if len(caPEM) > 0 {
		cluster.CertificateAuthorityData = base64.StdEncoding.EncodeToString(caPEM)
	}
	return kubeconfig{
		APIVersion:     "v1",
		Kind:           "Config",
		Clusters:       []kubeconfigNamed{{Name: name, Cluster: cluster}},
		Users:          []kubeconfigNamed{{Name: name + "-admin", User: &kubeconfigUser{Token: token}}},
		Contexts:       []kubeconfigNamed{{Name: name, Context: &kubeconfigContext{Cluster: name, User: name + "-admin", Namespace: namespace}}},
		CurrentContext: name,
	}
}

// readAdminConfig reads the client file hub serve writes in dataDir.
func readAdminConfig(dataDir string) (serve.AdminConfig, error) {
	path := filepath.Join(dataDir, serve.AdminConfigFile)
	var cfg serve.AdminConfig
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, fmt.Errorf("%s does not exist: hub serve writes it when it starts without --insecure (an --insecure hub needs no credentials: kubectl --server http://HOST:PORT)", path)
	}
	if err != nil {
		return cfg, fmt.Errorf("read %s: %w", path, err)
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		return cfg, fmt.Errorf("read %s: %w", path, err)
	}
	if cfg.Server == "" || cfg.Token == "" {
		return cfg, fmt.Errorf("%s names no server or no token", path)
	}
	return cfg, nil
}

// writeSecretFile writes b to path with mode 0600, whole or not at all,
// refusing to replace a file unless overwrite.
func writeSecretFile(path string, b []byte, overwrite bool) error {
	if _, err := os.Stat(path); err == nil && !overwrite {
		return fmt.Errorf("%s exists: give --overwrite to replace it, or another -o", path)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
