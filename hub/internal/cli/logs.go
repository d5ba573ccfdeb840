package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flotilla-edge/flotilla/hub/internal/client"
)

func newLogsCommand(e *env) *cobra.Command {
	var o client.LogOptions
	var tail int64
	cmd := &cobra.Command{
		Use:   "logs POD [-c CONTAINER]",
		Short: "Print a container's output, fetched from its board",
		Long: `Print what a container wrote to stdout and stderr. The hub asks the pod's node
for it over MQTT, so the node must be online. The board keeps each container's
current and previous run, within --container-log-max-size (agent flag).`,
		Example: `  hub logs sensor-5bce9
  hub logs sensor-5bce9 -c main --tail 20 -f
  hub logs sensor-5bce9 --previous
  hub logs pod/sensor-5bce9 --since 10m -n site-north`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if kind, rest, ok := strings.Cut(name, "/"); ok {
				switch strings.ToLower(kind) {
				case "pod", "pods", "po":
					name = rest
				default:
					return fmt.Errorf("hub logs takes a pod: %q is not one", args[0])
				}
			}
			if o.Follow && o.Previous {
				return fmt.Errorf("--follow and --previous cannot be used together")
			}
			if cmd.Flags().Changed("tail") && tail >= 0 {
				o.TailLines = &tail
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			return c.Logs(ctx, e.ns(), name, o, e.out)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Container, "container", "c", "", "the container (needed when the pod has several)")
	f.BoolVarP(&o.Follow, "follow", "f", false, "keep printing new output until interrupted")
	f.BoolVarP(&o.Previous, "previous", "p", false, "print the previous run of the container (before its last restart)")
	f.Int64Var(&tail, "tail", -1, "print only the last N lines (-1: all)")
	f.DurationVar(&o.Since, "since", 0, "print only output newer than this (5s, 2m, 3h)")
	f.Int64Var(&o.LimitBytes, "limit-bytes", 0, "print at most this many bytes")
	return cmd
}
