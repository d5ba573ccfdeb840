package cli

// The operator's security commands: bootstrap tokens, certificate
// requests and node revocation. See docs/security.md.

import (
	"fmt"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/config"
)

func newTokenCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Bootstrap tokens that enrol nodes"}
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a bootstrap token; prints it (shown once) and the CA fingerprint agents pin",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			ttl, _ := f.GetDuration("ttl")
			uses, _ := f.GetInt("uses")
			unlimited, _ := f.GetBool("unlimited")
			node, _ := f.GetString("node")
			desc, _ := f.GetString("description")
			items, _ := f.GetStringSlice("labels")
			labels, err := config.Labels(items)
			if err != nil {
				return fmt.Errorf("--labels: %w", err)
			}
			if ttl < time.Second {
				return fmt.Errorf("--ttl %s: want at least 1s", ttl)
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			req := api.BootstrapTokenRequest{TTLSeconds: int64(ttl / time.Second), Uses: uses, Unlimited: unlimited, Labels: labels, NodeName: node, Description: desc}
			var resp api.BootstrapTokenResponse
			if err := c.Post(ctx, api.TokensPath, req, &resp); err != nil {
				return err
			}
			if quiet, _ := f.GetBool("quiet"); quiet {
				fmt.Fprintf(e.out, "%s %s\n", resp.Token, resp.CAFingerprint)
				return nil
			}
			fmt.Fprintf(e.out, "token:          %s\nca-fingerprint: %s\nexpires:        %s\n\nEnrol a node with:\n  edge-agent --node-name NAME --hub https://HUB:8443 --token %s --ca-fingerprint %s\n",
				resp.Token, resp.CAFingerprint, resp.Expires.UTC().Format(time.RFC3339), resp.Token, resp.CAFingerprint)
			return nil
		},
	}
	f := create.Flags()
	f.Duration("ttl", 24*time.Hour, "how long the token is valid")
	f.Int("uses", 0, "how many nodes the token may enrol (default 1)")
	f.Bool("unlimited", false, "any number of nodes until it expires")
	f.StringSlice("labels", nil, "labels k=v for the nodes it enrols (comma-separated or repeated)")
	f.String("node", "", "the only node name the token enrols")
	f.String("description", "", "what the token is for")
	f.BoolP("quiet", "q", false, "print only the token and the CA fingerprint")
	cmd.AddCommand(create)
	return cmd
}

func newCertificateCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "certificate", Short: "Approve or deny nodes' certificate requests (hub get csr)"}
	for _, decision := range []string{api.CertificateApproved, api.CertificateDenied} {
		verb := "approve"
		if decision == api.CertificateDenied {
			verb = "deny"
		}
		sub := &cobra.Command{
			Use:   verb + " NAME...",
			Short: map[string]string{"approve": "Approve certificate requests: the hub issues the certificates", "deny": "Deny certificate requests"}[verb],
			Args:  cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := e.client()
				if err != nil {
					return err
				}
				ctx, stop := signalContext()
				defer stop()
				for _, name := range args {
					var csr api.CertificateSigningRequest
					path := "/apis/certificates.k8s.io/v1/certificatesigningrequests/" + url.PathEscape(name) + "/approval"
					req := api.CertificateApproval{Decision: decision, Reason: "Operator" + decision, Message: "by hub certificate " + verb}
					if err := c.Post(ctx, path, req, &csr); err != nil {
						return err
					}
					fmt.Fprintf(e.out, "certificatesigningrequest.certificates.k8s.io/%s %s\n", name, map[string]string{"approve": "approved", "deny": "denied"}[verb])
				}
				return nil
			},
		}
		cmd.AddCommand(sub)
	}
	return cmd
}

func newNodeCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Node credentials"}
	cmd.AddCommand(&cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke every certificate of a node and cut its connections; it must be enrolled again, with approval",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			var st api.Status
			if err := c.Post(ctx, "/api/v1/nodes/"+url.PathEscape(args[0])+"/revoke", struct{}{}, &st); err != nil {
				return err
			}
			fmt.Fprintln(e.out, st.Message)
			return nil
		},
	})
	return cmd
}
