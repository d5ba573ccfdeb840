package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/flotilla-edge/flotilla/hub/internal/printer"
)

func newTopCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "top (nodes | pods)",
		Short: "Show the CPU and memory nodes and pods use now, from their latest samples",
		Example: `  hub top nodes --sort-by=cpu
  hub top pods -A --sort-by=memory`,
	}
	cmd.AddCommand(newTopNodesCommand(e), newTopPodsCommand(e))
	return cmd
}

func parseSort(s string) (printer.TopSort, error) {
	switch s {
	case "":
		return printer.SortByName, nil
	case "cpu":
		return printer.SortByCPU, nil
	case "memory":
		return printer.SortByMemory, nil
	}
	return "", fmt.Errorf("--sort-by %q: want cpu or memory", s)
}

func newTopNodesCommand(e *env) *cobra.Command {
	var sortBy string
	var noHeaders bool
	cmd := &cobra.Command{
		Use:     "nodes [NAME]",
		Aliases: []string{"node", "no"},
		Short:   "CPU, memory, disk, temperature, load and uptime of nodes",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			by, err := parseSort(sortBy)
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			items, err := c.NodeMetrics(ctx)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				kept := items[:0]
				for _, m := range items {
					if m.Name == args[0] {
						kept = append(kept, m)
					}
				}
				if len(kept) == 0 {
					return fmt.Errorf("metrics not available yet for node %s", args[0])
				}
				items = kept
			}
			if err := printer.PrintTopNodes(e.out, items, by, noHeaders); errors.Is(err, printer.ErrNoResources) {
				return errors.New("metrics not available yet")
			} else if err != nil {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&sortBy, "sort-by", "", "sort by cpu or memory, highest first")
	cmd.Flags().BoolVar(&noHeaders, "no-headers", false, "do not print headers")
	return cmd
}

func newTopPodsCommand(e *env) *cobra.Command {
	var sortBy string
	var all, containers, noHeaders bool
	cmd := &cobra.Command{
		Use:     "pods [NAME]",
		Aliases: []string{"pod", "po"},
		Short:   "CPU and memory (working set) of pods",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			by, err := parseSort(sortBy)
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			ns := e.ns()
			if all {
				ns = ""
			}
			items, err := c.PodMetrics(ctx, ns, "")
			if err != nil {
				return err
			}
			if len(args) == 1 {
				kept := items[:0]
				for _, p := range items {
					if p.Name == args[0] {
						kept = append(kept, p)
					}
				}
				if len(kept) == 0 {
					return fmt.Errorf("metrics not available yet for pod %s/%s", ns, args[0])
				}
				items = kept
			}
			err = printer.PrintTopPods(e.out, items, by, all, containers, noHeaders)
			if errors.Is(err, printer.ErrNoResources) {
				fmt.Fprintln(e.errOut, printer.NoResourcesMessage(ns, all))
				return nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&sortBy, "sort-by", "", "sort by cpu or memory, highest first")
	f.BoolVarP(&all, "all-namespaces", "A", false, "pods of every namespace")
	f.BoolVar(&containers, "containers", false, "one row per container")
	f.BoolVar(&noHeaders, "no-headers", false, "do not print headers")
	return cmd
}
