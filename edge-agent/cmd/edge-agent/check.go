package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"syscall"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/agent"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/preflight"
	"github.com/flotilla-edge/flotilla/pkg/config"
)

// errCheckFailed is returned when a required check failed; the report
// already said which.
var errCheckFailed = errors.New("a required check failed")

// newCheckCommand is `edge-agent check`: the preflight. It takes the
// agent's own flags, environment and --config file, so it checks exactly
// the socket, snapshotter and state directory the agent would use.
func newCheckCommand(agentFlags *pflag.FlagSet) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check that this board can run the agent (kernel, cgroups, overlayfs, containerd, runc, pod network, disk, clock)",
		Long: `Check that this board can run the agent: cgroups (v1 or v2) with the cpu and
memory controllers, overlayfs (or the snapshotter configured), namespaces, seccomp filters,
the kernel version, containerd's socket and version, runc, the pod network's
needs (the CNI plugins in --cni-bin-dir, br_netfilter, IPv4 forwarding,
iptables for hostPorts), the state directory's free space and the clock. One PASS, WARN or FAIL line per check;
the exit status is non-zero when a required check FAILs.

It takes the agent's flags and --config file, so it checks what the agent
would use.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().AddFlagSet(agentFlags)
	cmd.Flags().Duration("check-timeout", preflight.DefaultTimeout, "how long each check may wait (containerd's answer, runc --version)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		configFile, _ := cmd.Flags().GetString("config")
		v, err := config.Load(cmd.Flags(), configFile)
		if err != nil {
			return err
		}
		stateDir, err := filepath.Abs(v.GetString("state-dir"))
		if err != nil {
			return fmt.Errorf("--state-dir: %w", err)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		report := preflight.Run(ctx, preflight.Config{
			StateDir:         stateDir,
			ContainerdSocket: v.GetString("containerd-socket"),
			Snapshotter:      v.GetString("snapshotter"),
			Platform:         platforms.Format(agentPlatform()),
			CNIBinDir:        v.GetString("cni-bin-dir"),
			Timeout:          v.GetDuration("check-timeout"),
		}, preflight.RealHost("/var/lib/containerd"))
		if err := report.Write(cmd.OutOrStdout()); err != nil {
			return err
		}
		if report.Failed() {
			return errCheckFailed
		}
		return nil
	}
	return cmd
}

// agentPlatform is the platform the agent was built for: the ARM variant
// comes from the build (GOARM), not from /proc/cpuinfo, which under
// emulation or on an ARMv6 Raspberry Pi tells something else.
func agentPlatform() ocispec.Platform {
	return ocispec.Platform{OS: goruntime.GOOS, Architecture: goruntime.GOARCH, Variant: agent.ArchVariant()}
}

// versionText is what `edge-agent version` prints.
func versionText() string {
	plat := platforms.Format(agentPlatform())
	arm := ""
	if v := agent.ArchVariant(); v != "" {
		arm = fmt.Sprintf(" (ARM variant %s, GOARM=%s)", v, v[1:])
	}
	return fmt.Sprintf("edge-agent %s\n  commit:     %s\n  built:      %s\n  platform:   %s%s\n  go:         %s\n",
		version, commit, date, plat, arm, goruntime.Version())
}
