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
	// timeout bounds the wait for the evicted pods to leave the node (0:
	// no bound).
	timeout time.Duration
	// poll is how often drain looks; progress how often it says what it
	// still waits for; placement how long it waits, once the node is
	// drained, for the evicted pods' Deployments to place or refuse
	// their replacements, to report the ones that found no node.
	poll, progress, placement time.Duration
}

func newDrainCommand(e *env) *cobra.Command {
	o := drainOptions{poll: time.Second, progress: 5 * time.Second, placement: 10 * time.Second}
	cmd := &cobra.Command{
		Use:   "drain NODE",
		Short: "Cordon a node and evict its Deployment pods",
		Long: `Cordon the node, then evict (delete) the Deployment pods on it, and wait until
the hub no longer has them on the node; their agent stops them within their
grace period. Their Deployments create replacements on other nodes; drain
says which of those no node could take (a one-node fleet, a nodeSelector
no other node matches, full nodes) and why, but does not wait for them
to run. While it waits it says for what, every few seconds; --timeout
gives up after that long (0, the default, waits as long as it takes).

DaemonSet pods stay on the node (--ignore-daemonsets, the default); with
--ignore-daemonsets=false, drain refuses a node that runs DaemonSet pods,
as kubectl does. Pods no Deployment manages are left, with a warning.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			return drain(ctx, e.out, e.errOut, c, args[0], o)
		},
	}
	cmd.Flags().BoolVar(&o.ignoreDaemonSets, "ignore-daemonsets", true, "leave DaemonSet pods on the node")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 0, "give up waiting for the pods to leave the node after this long (0: wait as long as it takes)")
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
	evictCtx := ctx
	if o.timeout > 0 {
		var cancel context.CancelFunc
		evictCtx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	for _, p := range evict {
		fmt.Fprintf(out, "evicting pod %s/%s\n", p.Namespace, p.Name)
		if err := c.Delete(evictCtx, podKind, p.Namespace, p.Name); err != nil && !client.IsNotFound(err) {
			return drainFailed(node, evict, err)
		}
	}
	if err := waitEvicted(evictCtx, out, errOut, c, node, evict, o); err != nil {
		return err
	}
	fmt.Fprintf(out, "node/%s drained\n", node)
	reportPlacement(ctx, errOut, c, node, evict, o)
	return nil
}

// drainFailed is drain's error once it began evicting, naming the pods it
// leaves on the node, as kubectl does.
func drainFailed(node string, pending []*api.Pod, err error) error {
	if len(pending) == 0 {
		return fmt.Errorf("unable to drain node %q: %w", node, err)
	}
	return fmt.Errorf("unable to drain node %q: %w; there are pending pods on it: %s", node, err, podNames(pending))
}

// waitEvicted waits until none of the evicted pods is on node any more,
// saying each one that left, and every o.progress which it still waits
// for.
func waitEvicted(ctx context.Context, out, errOut io.Writer, c *client.Client, node string, evicted []*api.Pod, o drainOptions) error {
	podKind, _ := api.LookupKind(api.KindPod)
	pending := append([]*api.Pod(nil), evicted...)
	ticker := time.NewTicker(o.poll)
	defer ticker.Stop()
	start := time.Now()
	lastSaid := start
	for len(pending) > 0 {
		objs, err := c.List(ctx, podKind, "", client.ListOptions{FieldSelector: "spec.nodeName=" + node})
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return drainFailed(node, pending, err)
		}
		onNode := map[string]bool{}
		for _, p := range asPods(objs) {
			onNode[p.UID] = true
		}
		var still []*api.Pod
		for _, p := range pending {
			if onNode[p.UID] {
				still = append(still, p)
			} else {
				fmt.Fprintf(out, "pod/%s evicted\n", p.Name)
			}
		}
		pending = still
		if len(pending) == 0 {
			return nil
		}
		if time.Since(lastSaid) >= o.progress {
			lastSaid = time.Now()
			fmt.Fprintf(errOut, "waiting for %d pod(s) to leave node %s (%s so far): %s\n",
				len(pending), node, time.Since(start).Round(time.Second), podNames(pending))
		}
		select {
		case <-ctx.Done():
		case <-ticker.C:
			continue
		}
		break
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return drainFailed(node, pending, fmt.Errorf("drain did not complete within %s", o.timeout))
	}
	return ctx.Err()
}

// podScheduled is the pod condition the scheduler sets False, with its
// reason, on a pod it found no node for.
const podScheduled = "PodScheduled"

// reportPlacement says which replacements of the evicted pods no node
// took, and why. It waits (up to o.placement) for each Deployment to have
// its replicas either placed or refused, since its controller creates
// them after drain evicted the pods; it does not wait for them to run.
func reportPlacement(ctx context.Context, errOut io.Writer, c *client.Client, node string, evicted []*api.Pod, o drainOptions) {
	deployKind, _ := api.LookupKind(api.KindDeployment)
	podKind, _ := api.LookupKind(api.KindPod)
	replicas := map[string]int{} // namespace/name → replicas
	for _, p := range evicted {
		ref := p.ControllerRef()
		key := p.Namespace + "/" + ref.Name
		if _, ok := replicas[key]; ok {
			continue
		}
		obj, err := c.Get(ctx, deployKind, p.Namespace, ref.Name)
		if err != nil {
			continue // gone, or the hub is: nothing to report on
		}
		d := obj.(*api.Deployment)
		replicas[key] = 1
		if d.Spec.Replicas != nil {
			replicas[key] = int(*d.Spec.Replicas)
		}
	}
	if len(replicas) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, o.placement)
	defer cancel()
	ticker := time.NewTicker(o.poll)
	defer ticker.Stop()
	namespaces := map[string]bool{}
	for key := range replicas {
		ns, _, _ := strings.Cut(key, "/")
		namespaces[ns] = true
	}
	var unplaced []placementProblem
	for {
		var pods []*api.Pod
		var err error
		for ns := range namespaces {
			var objs []api.Object
			if objs, err = c.List(ctx, podKind, ns, client.ListOptions{}); err != nil {
				break
			}
			pods = append(pods, asPods(objs)...)
		}
		if err == nil {
			var settled bool
			unplaced, settled = placement(pods, node, replicas)
			if settled {
				break
			}
		}
		select {
		case <-ctx.Done():
		case <-ticker.C:
			continue
		}
		break
	}
	if len(unplaced) == 0 {
		return
	}
	fmt.Fprintf(errOut, "Warning: %d evicted pod(s) have no node to go to:\n", len(unplaced))
	for _, u := range unplaced {
		fmt.Fprintf(errOut, "  %s\n", u)
	}
}

// placementProblem is a Deployment replica that no node runs.
type placementProblem struct {
	deployment string // namespace/name
	pod        string // name; "" for a replica not created yet
	why        string
}

func (p placementProblem) String() string {
	if p.pod == "" {
		return fmt.Sprintf("deployment %s: %s", p.deployment, p.why)
	}
	return fmt.Sprintf("pod %s/%s (deployment %s): %s", strings.SplitN(p.deployment, "/", 2)[0], p.pod, p.deployment, p.why)
}

// placement looks at the pods of the Deployments in replicas: those
// not on a node (other than the drained one), with the scheduler's reason,
// and whether every Deployment has decided on all its replicas (each
// placed, or refused with a reason).
func placement(pods []*api.Pod, drained string, replicas map[string]int) ([]placementProblem, bool) {
	have := map[string]int{}
	var out []placementProblem
	settled := true
	for _, p := range pods {
		ref := p.ControllerRef()
		if ref == nil || ref.Kind != api.KindDeployment {
			continue
		}
		key := p.Namespace + "/" + ref.Name
		if _, ok := replicas[key]; !ok || p.Spec.NodeName == drained {
			continue
		}
		have[key]++
		if p.Spec.NodeName != "" {
			continue
		}
		why := "not placed yet"
		decided := false
		for _, cond := range p.Status.Conditions {
			if cond.Type != podScheduled || cond.Status != api.ConditionFalse {
				continue
			}
			decided = true
			switch {
			case cond.Reason != "" && cond.Message != "":
				why = cond.Reason + ": " + cond.Message
			case cond.Message != "" || cond.Reason != "":
				why = cond.Reason + cond.Message
			default:
				why = "no node can take it"
			}
		}
		if !decided {
			settled = false
		}
		out = append(out, placementProblem{deployment: key, pod: p.Name, why: why})
	}
	for key, want := range replicas {
		if n := have[key]; n < want {
			settled = false
			out = append(out, placementProblem{deployment: key, why: fmt.Sprintf("%d of %d replicas exist; its controller has not replaced the evicted ones yet", n, want)})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].deployment != out[j].deployment {
			return out[i].deployment < out[j].deployment
		}
		return out[i].pod < out[j].pod
	})
	return out, settled
}
