package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flotilla-edge/flotilla/hub/internal/client"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

func newCordonCommand(e *env, cordon bool) *cobra.Command {
	use, short := "uncordon NODE", "Mark a node schedulable again"
	if cordon {
		use, short = "cordon NODE", "Mark a node unschedulable: no new Deployment pods go there"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			return setCordon(ctx, e.out, c, args[0], cordon)
		},
	}
}

// setCordon sets spec.unschedulable on a node, saying what it did as
// kubectl does.
func setCordon(ctx context.Context, out io.Writer, c *client.Client, node string, cordon bool) error {
	k, _ := api.LookupKind(api.KindNode)
	obj, err := c.Get(ctx, k, "", node)
	if err != nil {
		return err
	}
	n := obj.(*api.Node)
	verb := "uncordoned"
	if cordon {
		verb = "cordoned"
	}
	if n.Spec.Unschedulable == cordon {
		fmt.Fprintf(out, "node/%s already %s\n", node, verb)
		return nil
	}
	v := any(true)
	if !cordon {
		v = nil
	}
	if _, err := c.Patch(ctx, k, "", node, map[string]any{"spec": map[string]any{"unschedulable": v}}); err != nil {
		return err
	}
	fmt.Fprintf(out, "node/%s %s\n", node, verb)
	return nil
}

type drainOptions struct {
	ignoreDaemonSets bool
	timeout          time.Duration
	poll             time.Duration
}

func newDrainCommand(e *env) *cobra.Command {
	o := drainOptions{poll: time.Second}
	cmd := &cobra.Command{
		Use:   "drain NODE",
		Short: "Cordon a node and move its Deployment pods to other nodes",
		Long: `Cordon the node, then delete the Deployment pods on it; their Deployments
place replacements on other nodes, and drain waits until they are placed
(or --timeout passes). DaemonSet pods stay on the node (--ignore-daemonsets,
the default); with --ignore-daemonsets=false, drain refuses a node that runs
DaemonSet pods, as kubectl does.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			if o.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, o.timeout)
				defer cancel()
			}
			return drain(ctx, e.out, e.errOut, c, args[0], o)
		},
	}
	cmd.Flags().BoolVar(&o.ignoreDaemonSets, "ignore-daemonsets", true, "leave DaemonSet pods on the node")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 0, "give up waiting after this long (0: wait as long as it takes)")
	return cmd
}

// drainPlan sorts a node's pods: Deployment pods to evict, DaemonSet pods
// to leave, and others.
func drainPlan(pods []*api.Pod) (evict, daemon, other []*api.Pod) {
	for _, p := range pods {
		ref := p.ControllerRef()
		switch {
		case ref != nil && ref.Kind == api.KindDeployment:
			evict = append(evict, p)
		case ref != nil && ref.Kind == api.KindDaemonSet:
			daemon = append(daemon, p)
		default:
			other = append(other, p)
		}
	}
	return evict, daemon, other
}

func podNames(pods []*api.Pod) string {
	var names []string
	for _, p := range pods {
		names = append(names, p.Namespace+"/"+p.Name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func drain(ctx context.Context, out, errOut io.Writer, c *client.Client, node string, o drainOptions) error {
	if err := setCordon(ctx, out, c, node, true); err != nil {
		return err
	}
	podKind, _ := api.LookupKind(api.KindPod)
	objs, err := c.List(ctx, podKind, "", client.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return err
	}
	evict, daemon, other := drainPlan(asPods(objs))
	if len(daemon) > 0 {
		if !o.ignoreDaemonSets {
			return fmt.Errorf("unable to drain node %q: cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): %s", node, podNames(daemon))
		}
		fmt.Fprintf(errOut, "Warning: ignoring DaemonSet-managed Pods: %s\n", podNames(daemon))
	}
	if len(other) > 0 {
		fmt.Fprintf(errOut, "Warning: leaving Pods no Deployment manages: %s\n", podNames(other))
	}
	// What each Deployment should have elsewhere once its pods moved.
	deployKind, _ := api.LookupKind(api.KindDeployment)
	want := map[string]int{} // namespace/name → pods to see on other nodes
	for _, p := range evict {
		key := p.Namespace + "/" + p.ControllerRef().Name
		if _, ok := want[key]; ok {
			continue
		}
		obj, err := c.Get(ctx, deployKind, p.Namespace, p.ControllerRef().Name)
		if client.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		d := obj.(*api.Deployment)
		replicas := 1
		if d.Spec.Replicas != nil {
			replicas = int(*d.Spec.Replicas)
		}
		want[key] = replicas
	}
	for _, p := range evict {
		fmt.Fprintf(out, "evicting pod %s/%s\n", p.Namespace, p.Name)
		if err := c.Delete(ctx, podKind, p.Namespace, p.Name); err != nil && !client.IsNotFound(err) {
			return err
		}
		fmt.Fprintf(out, "pod/%s evicted\n", p.Name)
	}
	if err := waitRescheduled(ctx, c, node, want, o.poll); err != nil {
		return err
	}
	fmt.Fprintf(out, "node/%s drained\n", node)
	return nil
}

// waitRescheduled waits until every Deployment in want has its replicas
// placed on nodes other than node.
func waitRescheduled(ctx context.Context, c *client.Client, node string, want map[string]int, poll time.Duration) error {
	if len(want) == 0 {
		return nil
	}
	podKind, _ := api.LookupKind(api.KindPod)
	ticker := time.NewTicker(poll)
	defer ticker.Stop()
	for {
		objs, err := c.List(ctx, podKind, "", client.ListOptions{})
		if err != nil && ctx.Err() == nil {
			return err
		}
		if err == nil {
			missing := rescheduleMissing(asPods(objs), node, want)
			if len(missing) == 0 {
				return nil
			}
			select {
			case <-ctx.Done():
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return fmt.Errorf("timed out waiting for the pods of %s to be placed on other nodes", strings.Join(missing, ", "))
				}
				return ctx.Err()
			case <-ticker.C:
			}
			continue
		}
		return ctx.Err()
	}
}

// rescheduleMissing names the Deployments with fewer pods bound to other
// nodes than they want.
func rescheduleMissing(pods []*api.Pod, node string, want map[string]int) []string {
	have := map[string]int{}
	for _, p := range pods {
		ref := p.ControllerRef()
		if ref == nil || ref.Kind != api.KindDeployment || p.Spec.NodeName == "" || p.Spec.NodeName == node {
			continue
		}
		have[p.Namespace+"/"+ref.Name]++
	}
	var missing []string
	for key, n := range want {
		if have[key] < n {
			missing = append(missing, key)
		}
	}
	sort.Strings(missing)
	return missing
}
