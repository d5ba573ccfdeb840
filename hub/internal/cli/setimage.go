package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func newSetCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "set SUBCOMMAND",
		Short: "Change one field of an object (image)",
	}
	cmd.AddCommand(newSetImageCommand(e))
	return cmd
}

func newSetImageCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "image (ds/NAME | deploy/NAME) CONTAINER=IMAGE...",
		Short: "Change container images of a daemonset's or deployment's template, starting a rollout",
		Example: `  hub set image ds/sensor sensor=registry.local/sensor:v2
  hub set image deploy/web '*=registry.local/web:1.4'`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			objArgs, images, err := splitImageArgs(args)
			if err != nil {
				return err
			}
			w, err := parseWorkload(objArgs, e.ns())
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			obj, err := w.get(ctx, c)
			if err != nil {
				return err
			}
			containers, changed, err := setImages(template(obj).Spec.Containers, images)
			if err != nil {
				return err
			}
			if !changed {
				fmt.Fprintf(e.out, "%s image unchanged\n", w)
				return nil
			}
			raw, err := json.Marshal(containers)
			if err != nil {
				return err
			}
			var list any
			if err := json.Unmarshal(raw, &list); err != nil {
				return err
			}
			patch := map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"containers": list}}}}
			if _, err := c.Patch(ctx, w.kind, w.namespace, w.name, patch); err != nil {
				return err
			}
			fmt.Fprintf(e.out, "%s image updated\n", w)
			return nil
		},
	}
}

// splitImageArgs separates the object arguments from CONTAINER=IMAGE ones.
func splitImageArgs(args []string) ([]string, map[string]string, error) {
	var obj []string
	images := map[string]string{}
	for _, a := range args {
		name, image, ok := strings.Cut(a, "=")
		if !ok {
			if len(images) > 0 {
				return nil, nil, fmt.Errorf("%q: want CONTAINER=IMAGE", a)
			}
			obj = append(obj, a)
			continue
		}
		if name == "" || image == "" {
			return nil, nil, fmt.Errorf("%q: want CONTAINER=IMAGE", a)
		}
		images[name] = image
	}
	if len(images) == 0 {
		return nil, nil, errors.New("at least one image update is required (CONTAINER=IMAGE)")
	}
	return obj, images, nil
}

// setImages returns a copy of containers with the images set; "*" names
// every container. Naming a container the template lacks is an error.
func setImages(containers []api.Container, images map[string]string) ([]api.Container, bool, error) {
	out := append([]api.Container(nil), containers...)
	changed := false
	for name, image := range images {
		found := false
		for i := range out {
			if name == "*" || out[i].Name == name {
				found = true
				if out[i].Image != image {
					out[i].Image = image
					changed = true
				}
			}
		}
		if !found {
			return nil, false, fmt.Errorf("unable to find container named %q", name)
		}
	}
	return out, changed, nil
}
