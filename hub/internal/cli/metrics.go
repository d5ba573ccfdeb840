package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/flotilla-edge/flotilla/hub/internal/printer"
)

func newMetricsCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "metrics node NAME",
		Short: "Print the metric series the hub kept for a node, for scripts and plots",
		Example: `  hub metrics node edge-1 --since 1h
  hub metrics node edge-1 --since 6h --metric cpu --metric memory.percent -o csv`,
	}
	cmd.AddCommand(newMetricsNodeCommand(e))
	return cmd
}

func newMetricsNodeCommand(e *env) *cobra.Command {
	var since time.Duration
	var names []string
	var output string
	cmd := &cobra.Command{
		Use:     "node NAME",
		Aliases: []string{"nodes", "no"},
		Short:   "A node's series: one row per sample, one column per metric",
		Long: `Metric names are cpu.usage_cores, cpu.percent, memory.used_bytes, memory.percent,
load.1, disk.percent, temperature.max_celsius, uptime.seconds, and per object
fs.MOUNT.percent, net.IFACE.rx_bps, diskio.DEV.read_bps, temperature.SENSOR.celsius,
pod.NS/NAME.cpu_cores. --metric takes a name or a prefix (cpu, fs, pod).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch output {
			case "", "json", "csv":
			default:
				return fmt.Errorf("--output %q: want json or csv (or nothing for a table)", output)
			}
			if since <= 0 {
				return fmt.Errorf("--since %s: want a positive duration", since)
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			s, err := c.NodeSeries(ctx, args[0], since, names)
			if err != nil {
				return err
			}
			switch output {
			case "json":
				return printer.PrintObjectJSON(e.out, s)
			case "csv":
				return printer.PrintSeriesCSV(e.out, s)
			}
			if err := printer.PrintSeriesTable(e.out, s); errors.Is(err, printer.ErrNoResources) {
				fmt.Fprintf(e.errOut, "No samples of node %s in the last %s\n", args[0], since)
				return nil
			} else if err != nil {
				return err
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVar(&since, "since", time.Hour, "how far back to go")
	f.StringSliceVar(&names, "metric", nil, "metric name or prefix to print (repeatable; default all)")
	f.StringVarP(&output, "output", "o", "", "output format: json or csv (default: a table)")
	return cmd
}
