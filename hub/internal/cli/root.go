// Package cli is the hub binary's command line: `hub serve` runs the hub,
// and every other command is an operator's client of the hub's HTTP API,
// shaped like kubectl (apply, get, describe, delete, label, rollout, set
// image, scale, cordon, uncordon, drain).
package cli

import (
	"context"
	"encoding/base64"
	"errors"
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
	configFile string
	server     string
	// serverHint says where server came from when nothing named it, for
	// the error of a hub that is not there.
	serverHint  string
	token       string
	caPEM       []byte
	namespace   string
	out, errOut io.Writer
	v           *viper.Viper
}

// defaultServer is the hub's address when nothing names one: an
// --insecure hub on this machine.
const defaultServer = "http://127.0.0.1:8080"

// ErrorText is how main prints err: as kubectl does, an answer of the hub
// as it is ("Error from server (NotFound): …"), anything else after
// "error: ".
func ErrorText(err error) string {
	var se *client.StatusError
	if errors.As(err, &se) {
		return err.Error()
	}
	return "error: " + err.Error()
}

// NewRootCommand returns the `hub` command tree.
func NewRootCommand(build BuildInfo) *cobra.Command { return newRoot(build, defaultServer) }

func newRoot(build BuildInfo, defServer string) *cobra.Command {
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
	pf.String("server", defServer, serverUsage)
	pf.String("token", "", "the hub's administrator token (see {data-dir}/admin.conf)")
	pf.String("certificate-authority", "", "PEM file of the hub CA, to check an https --server")
	pf.String("certificate-authority-data", "", "the hub CA, PEM in base64 (as admin.conf carries it)")
	pf.StringP("namespace", "n", "", "namespace (default \"default\")")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if e.configFile == "" && cmd.Name() != "serve" {
			e.configFile = userConfigFile()
		}
		v, err := config.Load(cmd.Flags(), e.configFile)
		if err != nil {
			return err
		}
		e.v = v
		e.server = v.GetString("server")
		if !config.Given(v, cmd.Flags(), "server") {
			e.serverHint = noServerHint(e.configFile)
		}
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
	// The help shows the server the commands would use, which a config
	// file (or FLOTILLA_SERVER) usually sets, not the built-in default.
	help := root.HelpFunc()
	root.SetHelpFunc(func(cmd *cobra.Command, args []string) {
		if f := root.PersistentFlags().Lookup("server"); f != nil && !f.Changed {
			server, source := effectiveServer(e.configFile, defServer)
			f.DefValue, f.Usage = server, serverUsage
			if source != "" {
				f.Usage = serverUsage + ", from " + source
			}
		}
		help(cmd, args)
	})
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
		newKubeconfigCommand(e),
	)
	return root
}

const serverUsage = "URL of the hub's HTTP API"

// userConfigFile is ~/.flotilla/config if it exists: like ~/.kube/config,
// the client settings of this user.
func userConfigFile() string {
	if home, err := os.UserHomeDir(); err == nil {
		if p := filepath.Join(home, ".flotilla", "config"); fileExists(p) {
			return p
		}
	}
	return ""
}

// noServerHint explains a server that nothing named.
func noServerHint(configFile string) string {
	if configFile == "" {
		return "no server was given and " + filepath.Join("~", ".flotilla", "config") + " does not exist: " +
			"use the client file hub serve writes, hub --config {data-dir}/admin.conf (or FLOTILLA_CONFIG, " +
			"or copy it to ~/.flotilla/config), or give --server"
	}
	return configFile + " names no server, so the default was used: add server: to it, or give --server"
}

// effectiveServer is the server a command run now would use, and where
// it comes from ("" for the built-in default), for the help. A config
// file that does not read is left to the command to report.
func effectiveServer(configFile, def string) (server, source string) {
	if s := os.Getenv(config.EnvPrefix + "_SERVER"); s != "" {
		return s, config.EnvPrefix + "_SERVER"
	}
	if configFile == "" {
		configFile = userConfigFile()
	}
	if configFile != "" {
		v := viper.New()
		v.SetConfigFile(configFile)
		v.SetConfigType("yaml")
		if v.ReadInConfig() == nil && v.GetString("server") != "" {
			return v.GetString("server"), configFile
		}
	}
	return def, ""
}

// client returns an API client for the configured server.
func (e *env) client() (*client.Client, error) {
	return client.NewWithOptions(e.server, client.Options{CAPEM: e.caPEM, Token: e.token, UnreachableHint: e.serverHint})
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
