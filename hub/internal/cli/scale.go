package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func newScaleCommand(e *env) *cobra.Command {
	replicas := int32(-1)
	cmd := &cobra.Command{
		Use:     "scale (deploy/NAME | deployment NAME) --replicas=N",
		Short:   "Set a deployment's number of replicas",
		Example: `  hub scale deploy/web --replicas=5`,
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if replicas < 0 {
				return errors.New("--replicas is required and must not be negative")
			}
			w, err := parseWorkload(args, e.ns())
			if err != nil {
				return err
			}
			if w.kind.Kind != api.KindDeployment {
				return fmt.Errorf("%s cannot be scaled: a daemonset runs one pod per matching node", w)
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			patch := map[string]any{"spec": map[string]any{"replicas": replicas}}
			if _, err := c.Patch(ctx, w.kind, w.namespace, w.name, patch); err != nil {
				return err
			}
			fmt.Fprintf(e.out, "%s scaled\n", w)
			return nil
		},
	}
	cmd.Flags().Int32Var(&replicas, "replicas", -1, "the new number of replicas")
	return cmd
}
