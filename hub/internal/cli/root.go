// Package cli is the hub binary's command line: `hub serve` runs the hub,
// and every other command is an operator's client of the hub's HTTP API,
// shaped like kubectl (apply, get, describe, delete, label, rollout, set
// image, scale, cordon, uncordon, drain).
package cli

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/flotilla-edge/flotilla/hub/internal/client"
	"github.com/flotilla-edge/flotilla/pkg/config"
)

// BuildInfo identifies the binary.
type BuildInfo struct {
	Version, Commit, Date string
}

// env is what every client command needs.
type env struct {
	configFile  string
	server      string
	token       string
	caPEM       []byte
	namespace   string
	out, errOut io.Writer
	v           *viper.Viper
}

// NewRootCommand returns the `hub` command tree.
func NewRootCommand(build BuildInfo) *cobra.Command {
	e := &env{}
	root := &cobra.Command{
		Use:   "hub",
		Short: "Flotilla hub: the control plane of an edge fleet, and its operator CLI",
		Long: `hub serve runs the Flotilla hub. Every other command talks to a running hub
over its HTTP API (--server, FLOTILLA_SERVER, or "server:" in --config, which
defaults to ~/.flotilla/config when that file exists).
A hub started without --insecure writes {data-dir}/admin.conf, a --config
file with its URL, CA and an administrator's token:

  hub --config /var/lib/flotilla-hub/admin.conf get nodes
  export FLOTILLA_CONFIG=/var/lib/flotilla-hub/admin.conf`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&e.configFile, "config", os.Getenv("FLOTILLA_CONFIG"), "YAML file with settings (keys are the flag names)")
	pf.String("server", "http://127.0.0.1:8080", "URL of the hub's HTTP API")
	pf.String("token", "", "the hub's administrator token (see {data-dir}/admin.conf)")
	pf.String("certificate-authority", "", "PEM file of the hub CA, to check an https --server")
	pf.String("certificate-authority-data", "", "the hub CA, PEM in base64 (as admin.conf carries it)")
	pf.StringP("namespace", "n", "", "namespace (default \"default\")")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if e.configFile == "" && cmd.Name() != "serve" {
			// Like ~/.kube/config: the client settings of this user.
			if home, err := os.UserHomeDir(); err == nil {
				if p := filepath.Join(home, ".flotilla", "config"); fileExists(p) {
					e.configFile = p
				}
			}
		}
		v, err := config.Load(cmd.Flags(), e.configFile)
		if err != nil {
			return err
		}
		e.v = v
		e.server = v.GetString("server")
		e.token = v.GetString("token")
		if f := v.GetString("certificate-authority"); f != "" {
			b, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("--certificate-authority: %w", err)
			}
			e.caPEM = b
		} else if d := v.GetString("certificate-authority-data"); d != "" {
			b, err := base64.StdEncoding.DecodeString(d)
			if err != nil {
				return fmt.Errorf("certificate-authority-data: not base64: %w", err)
			}
			e.caPEM = b
		}
		e.namespace = v.GetString("namespace")
		e.out, e.errOut = cmd.OutOrStdout(), cmd.ErrOrStderr()
		return nil
	}
	root.AddCommand(
		newServeCommand(e),
		newApplyCommand(e),
		newGetCommand(e),
		newDescribeCommand(e),
		newDeleteCommand(e),
		newLabelCommand(e),
		newRolloutCommand(e),
		newSetCommand(e),
		newScaleCommand(e),
		newCordonCommand(e, true),
		newCordonCommand(e, false),
		newDrainCommand(e),
		newVersionCommand(build),
		newTopCommand(e),
		newMetricsCommand(e),
		newLogsCommand(e),
		newTokenCommand(e),
		newCertificateCommand(e),
		newNodeCommand(e),
	)
	return root
}

// client returns an API client for the configured server.
func (e *env) client() (*client.Client, error) {
	return client.NewWithOptions(e.server, client.Options{CAPEM: e.caPEM, Token: e.token})
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// ns is the namespace to use: -n, or "default".
func (e *env) ns() string {
	if e.namespace == "" {
		return "default"
	}
	return e.namespace
}

// signalContext ends on Ctrl-C or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func newVersionCommand(build BuildInfo) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the hub's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "hub %s (commit %s, built %s)\n", build.Version, build.Commit, build.Date)
		},
	}
}
