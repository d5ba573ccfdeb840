package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/flotilla-edge/flotilla/hub/internal/client"
	"github.com/flotilla-edge/flotilla/hub/internal/printer"
	"github.com/flotilla-edge/flotilla/hub/internal/rollout"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Template annotation `hub rollout restart` sets, as kubectl does.
const annotationRestartedAt = "kubectl.kubernetes.io/restartedAt"

// workload is a DaemonSet or Deployment named on the command line.
type workload struct {
	kind      api.KindInfo
	namespace string
	name      string
}

func (w workload) String() string { return printer.ObjectName(w.kind, w.name) }

// parseWorkload reads "ds/NAME", "deploy/NAME" or "KIND NAME" and accepts
// only the kinds that roll out.
func parseWorkload(args []string, namespace string) (workload, error) {
	targets, err := parseTargets(args)
	if err != nil {
		return workload{}, err
	}
	if len(targets) != 1 || len(targets[0].names) != 1 {
		return workload{}, errors.New("name exactly one daemonset or deployment: ds/NAME, deploy/NAME or KIND NAME")
	}
	t := targets[0]
	if t.kind.Kind != api.KindDaemonSet && t.kind.Kind != api.KindDeployment {
		return workload{}, fmt.Errorf("no rollouts for %s: only daemonsets and deployments roll out", t.kind.Resource)
	}
	return workload{kind: t.kind, namespace: namespace, name: t.names[0]}, nil
}

func (w workload) get(ctx context.Context, c *client.Client) (api.Object, error) {
	return c.Get(ctx, w.kind, w.namespace, w.name)
}

// template returns the object's pod template.
func template(obj api.Object) *api.PodTemplateSpec {
	switch o := obj.(type) {
	case *api.DaemonSet:
		return &o.Spec.Template
	case *api.Deployment:
		return &o.Spec.Template
	}
	return nil
}

func newRolloutCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout SUBCOMMAND",
		Short: "Follow and steer rollouts of daemonsets and deployments",
		Example: `  hub rollout status ds/sensor
  hub rollout pause ds/sensor ; hub rollout resume ds/sensor
  hub rollout history ds/sensor
  hub rollout undo ds/sensor --to-revision=2
  hub rollout restart deploy/web`,
	}
	cmd.AddCommand(
		newRolloutStatusCommand(e),
		newRolloutPauseCommand(e, true),
		newRolloutPauseCommand(e, false),
		newRolloutHistoryCommand(e),
		newRolloutUndoCommand(e),
		newRolloutRestartCommand(e),
	)
	return cmd
}

func newRolloutStatusCommand(e *env) *cobra.Command {
	var timeout time.Duration
	var watch bool
	cmd := &cobra.Command{
		Use:   "status (ds/NAME | deploy/NAME)",
		Short: "Show a rollout's progress until it completes; exit non-zero if it fails, is paused or stalls",
		Long: `Show the progress of a rollout until it completes. On a terminal it redraws a
progress bar with the counts (updated, ready, unavailable, failed,
offline-pending, total), pre-pull progress and the nodes being updated;
otherwise it prints one line whenever something changes. It exits 0 when
the rollout is complete, and non-zero, saying why, when the rollout failed,
was rolled back, is paused, or passed its progress deadline; and with exit
code 3 when it ended with failed nodes that maxFailures tolerated (those
nodes do not run the new revision). Failed nodes are named with the
reason the hub has (an image that cannot be pulled, a pod that is not
Ready in time, a revert by the agent).`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := parseWorkload(args, e.ns())
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			out := newProgressWriter(e.out)
			return followRollout(ctx, out, func(ctx context.Context) (api.Object, error) { return w.get(ctx, c) }, watch, time.Second, time.Now)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long (0: wait as long as it takes)")
	cmd.Flags().BoolVarP(&watch, "watch", "w", true, "follow the rollout until it ends; --watch=false prints where it stands once")
	return cmd
}

// rolloutVerdict says where a rollout stands from its object: done (with
// the success message) or failed (err), or neither while it goes on.
func rolloutVerdict(obj api.Object, now time.Time) (p printer.Progress, done bool, msg string, err error) {
	switch o := obj.(type) {
	case *api.DaemonSet:
		p = printer.ProgressFromDaemonSet(o)
		ro := o.Status.Rollout
		name := fmt.Sprintf("daemon set %q", o.Name)
		if o.Status.ObservedGeneration < o.Generation || ro == nil || ro.TemplateHash != api.HashTemplate(&o.Spec.Template) {
			p.Waiting = "waiting for the hub to take up the new template"
			return p, false, "", nil
		}
		// The hub fails a node that misses the progress deadline; the CLI
		// gives up on a rollout that made no progress for twice as long
		// (a budget held by failed nodes, a pre-pull that never ends).
		deadline := rollout.DefaultProgressDeadline
		if r := o.Spec.Rollout; r != nil && r.ProgressDeadlineSeconds != nil && *r.ProgressDeadlineSeconds > 0 {
			deadline = time.Duration(*r.ProgressDeadlineSeconds) * time.Second
		}
		return verdict(p, ro, name, 2*deadline, now)
	case *api.Deployment:
		p = printer.ProgressFromDeployment(o)
		ro := o.Status.Rollout
		name := fmt.Sprintf("deployment %q", o.Name)
		if o.Status.ObservedGeneration < o.Generation || ro == nil || ro.TemplateHash != api.HashTemplate(&o.Spec.Template) {
			p.Waiting = "waiting for deployment spec update to be observed"
			return p, false, "", nil
		}
		for _, c := range o.Status.Conditions {
			if c.Type == "Progressing" && c.Reason == "ProgressDeadlineExceeded" {
				return p, true, "", fmt.Errorf("%s exceeded its progress deadline", name)
			}
		}
		return verdict(p, ro, name, 0, now)
	}
	return p, true, "", fmt.Errorf("no rollouts for %T", obj)
}

func verdict(p printer.Progress, ro *api.RolloutStatus, name string, deadline time.Duration, now time.Time) (printer.Progress, bool, string, error) {
	switch ro.Phase {
	case api.RolloutComplete:
		if ro.Failed > 0 {
			// A hub from before the Degraded phase: never success.
			return p, true, "", degraded(name, ro)
		}
		msg := name + " successfully rolled out"
		if ro.OfflinePending > 0 {
			msg += fmt.Sprintf(" (%d offline node(s) will update when they return: %s)", ro.OfflinePending, strings.Join(ro.OfflinePendingNodes, ", "))
		}
		return p, true, msg, nil
	case api.RolloutDegraded:
		return p, true, "", degraded(name, ro)
	case api.RolloutFailed:
		return p, true, "", fmt.Errorf("%s rollout failed: %s", name, ro.Message)
	case api.RolloutRolledBack:
		if f := ro.Failure; f != nil {
			state := "rolled back"
			if ro.Updated < ro.Total || ro.Ready < ro.Total {
				state = "is being rolled back"
			}
			return p, true, "", fmt.Errorf("%s rollout of revision %d failed and %s to revision %d: %s%s",
				name, f.Revision, state, f.RolledBackTo, f.Message, nodeReasons(f.Nodes))
		}
		return p, true, "", fmt.Errorf("%s rollout failed and was rolled back: %s", name, ro.Message)
	case api.RolloutPaused:
		return p, true, "", fmt.Errorf("%s rollout is paused: %s", name, ro.Message)
	}
	if deadline > 0 && !ro.LastProgressTime.IsZero() && now.Sub(ro.LastProgressTime.Time) > deadline {
		return p, true, "", fmt.Errorf("%s made no progress for %s, stalled past its progress deadline: %s",
			name, now.Sub(ro.LastProgressTime.Time).Round(time.Second), ro.Message)
	}
	return p, false, "", nil
}

// ExitDegraded is the exit code of `rollout status` for a rollout that
// ended with nodes that failed within maxFailures: it is over, but those
// nodes do not run the revision, so a pipeline must not read it as
// success (exit 0) nor as a failed rollout (exit 1).
const ExitDegraded = 3

func degraded(name string, ro *api.RolloutStatus) error {
	return &exitError{code: ExitDegraded, err: fmt.Errorf("%s rolled out, but %d node(s) failed and do not run revision %d%s",
		name, ro.Failed, ro.Revision, nodeReasons(ro.FailedNodes))}
}

// nodeReasons lists nodes and their reasons, one per line.
func nodeReasons(nodes []api.NodeReason) string {
	var b strings.Builder
	for _, n := range nodes {
		fmt.Fprintf(&b, "\n  %s: %s", n.Node, n.Reason)
	}
	return b.String()
}

// progressWriter shows progress on a terminal (redrawn in place) or as
// plain lines (one per change).
type progressWriter struct {
	w     io.Writer
	tty   bool
	width func() int
	drawn int    // lines drawn last time (terminal)
	last  string // what was shown last
}

func newProgressWriter(w io.Writer) *progressWriter {
	pw := &progressWriter{w: w, width: func() int { return 80 }}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		pw.tty = true
		pw.width = func() int {
			if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
				return cols
			}
			return 80
		}
	}
	return pw
}

// show draws p if it differs from what is shown.
func (pw *progressWriter) show(p printer.Progress) {
	if !pw.tty {
		line := printer.ProgressLine(p)
		if line != pw.last {
			fmt.Fprintln(pw.w, line)
			pw.last = line
		}
		return
	}
	lines := printer.ProgressBlock(p, pw.width()-1)
	block := strings.Join(lines, "\n")
	if block == pw.last {
		return
	}
	var b strings.Builder
	if pw.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dF", pw.drawn) // to the start of the first line drawn
	}
	b.WriteString("\x1b[J") // clear from there down
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	_, _ = io.WriteString(pw.w, b.String())
	pw.drawn, pw.last = len(lines), block
}

// followRollout polls the object every interval and shows its progress
// until the rollout ends or ctx does.
func followRollout(ctx context.Context, pw *progressWriter, fetch func(context.Context) (api.Object, error), watch bool, interval time.Duration, now func() time.Time) error {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	failures := 0
	for {
		obj, err := fetch(ctx)
		switch {
		case err == nil:
			failures = 0
			p, done, msg, verr := rolloutVerdict(obj, now())
			pw.show(p)
			if done {
				if verr != nil {
					return verr
				}
				fmt.Fprintln(pw.w, msg)
				return nil
			}
			if !watch {
				return nil
			}
		case client.IsNotFound(err), ctx.Err() != nil:
			if ctx.Err() != nil {
				return timeoutError(ctx)
			}
			return err
		default:
			// The hub may be restarting; keep trying for a while.
			if failures++; failures > 30 {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return timeoutError(ctx)
		case <-ticker.C:
		}
	}
}

func timeoutError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errors.New("timed out waiting for the rollout to finish")
	}
	return ctx.Err()
}

func newRolloutPauseCommand(e *env, pause bool) *cobra.Command {
	verb, use := "resumed", "resume"
	short := "Resume a paused rollout (also continues after a canary)"
	if pause {
		verb, use, short = "paused", "pause", "Pause a rollout where it stands"
	}
	return &cobra.Command{
		Use:   use + " (ds/NAME | deploy/NAME)",
		Short: short,
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := parseWorkload(args, e.ns())
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
			patch, err := pausePatch(obj, pause)
			if err != nil {
				return err
			}
			if _, err := c.Patch(ctx, w.kind, w.namespace, w.name, patch); err != nil {
				return err
			}
			fmt.Fprintf(e.out, "%s %s\n", w, verb)
			return nil
		},
	}
}

// pausePatch is the merge patch that pauses or resumes obj, or an error
// when it already is as asked, as kubectl says.
func pausePatch(obj api.Object, pause bool) (map[string]any, error) {
	var paused bool
	var patch map[string]any
	switch o := obj.(type) {
	case *api.DaemonSet:
		paused = o.Spec.Rollout != nil && o.Spec.Rollout.Paused
		v := any(true)
		if !pause {
			v = nil
		}
		patch = map[string]any{"spec": map[string]any{"rollout": map[string]any{"paused": v}}}
	case *api.Deployment:
		paused = o.Spec.Paused
		v := any(true)
		if !pause {
			v = nil
		}
		patch = map[string]any{"spec": map[string]any{"paused": v}}
	default:
		return nil, fmt.Errorf("%T does not roll out", obj)
	}
	k, _ := api.LookupKind(obj.GetTypeMeta().Kind)
	name := fmt.Sprintf("%s.apps %q", k.Resource, obj.GetObjectMeta().Name)
	if pause && paused {
		return nil, fmt.Errorf("%s is already paused", name)
	}
	if !pause && !paused {
		return nil, fmt.Errorf("%s is not paused", name)
	}
	return patch, nil
}

// revisionsOf lists obj's ControllerRevisions, oldest first.
func revisionsOf(ctx context.Context, c *client.Client, obj api.Object) ([]*api.ControllerRevision, error) {
	k, _ := api.LookupKind(api.KindControllerRevision)
	m := obj.GetObjectMeta()
	objs, err := c.List(ctx, k, m.Namespace, client.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []*api.ControllerRevision
	for _, o := range objs {
		if cr, ok := o.(*api.ControllerRevision); ok && cr.IsControlledBy(m.UID) {
			out = append(out, cr)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Revision < out[j].Revision })
	return out, nil
}

func newRolloutHistoryCommand(e *env) *cobra.Command {
	var revision int64
	cmd := &cobra.Command{
		Use:   "history (ds/NAME | deploy/NAME)",
		Short: "List a rollout's revisions, or show one with --revision",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := parseWorkload(args, e.ns())
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
			revs, err := revisionsOf(ctx, c, obj)
			if err != nil {
				return err
			}
			return printHistory(e.out, w, revs, revision)
		},
	}
	cmd.Flags().Int64Var(&revision, "revision", 0, "show the pod template of this revision")
	return cmd
}

func printHistory(out io.Writer, w workload, revs []*api.ControllerRevision, revision int64) error {
	if revision > 0 {
		for _, cr := range revs {
			if cr.Revision == revision {
				fmt.Fprintf(out, "%s with revision #%d\n", w, revision)
				return printer.DescribeTemplate(out, &cr.Data)
			}
		}
		return fmt.Errorf("unable to find the specified revision")
	}
	fmt.Fprintf(out, "%s\n", w)
	tw := []string{"REVISION\tCHANGE-CAUSE"}
	for _, cr := range revs {
		cause := cr.Annotations[rollout.AnnotationChangeCause]
		if cause == "" {
			cause = "<none>"
		}
		tw = append(tw, fmt.Sprintf("%d\t%s", cr.Revision, cause))
	}
	return writeColumns(out, tw)
}

func newRolloutUndoCommand(e *env) *cobra.Command {
	var toRevision int64
	cmd := &cobra.Command{
		Use:   "undo (ds/NAME | deploy/NAME) [--to-revision=N]",
		Short: "Roll back to the previous revision, or to revision N",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := parseWorkload(args, e.ns())
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
			revs, err := revisionsOf(ctx, c, obj)
			if err != nil {
				return err
			}
			target, err := undoTarget(template(obj), revs, toRevision)
			if err != nil {
				return err
			}
			if target == nil {
				fmt.Fprintf(e.out, "%s skipped rollback (current template already matches revision %d)\n", w, toRevision)
				return nil
			}
			patch, err := templatePatch(template(obj), &target.Data)
			if err != nil {
				return err
			}
			if _, err := c.Patch(ctx, w.kind, w.namespace, w.name, patch); err != nil {
				return err
			}
			fmt.Fprintf(e.out, "%s rolled back\n", w)
			return nil
		},
	}
	cmd.Flags().Int64Var(&toRevision, "to-revision", 0, "the revision to roll back to (0: the previous one)")
	return cmd
}

// undoTarget picks the revision to go back to: toRevision, or the newest
// one older than the current template's. It returns nil when the current
// template already is that revision.
func undoTarget(current *api.PodTemplateSpec, revs []*api.ControllerRevision, toRevision int64) (*api.ControllerRevision, error) {
	hash := api.HashTemplate(current)
	var cur *api.ControllerRevision
	for _, cr := range revs {
		if rollout.HashOf(cr) == hash {
			cur = cr
		}
	}
	if toRevision > 0 {
		for _, cr := range revs {
			if cr.Revision == toRevision {
				if cr == cur {
					return nil, nil
				}
				return cr, nil
			}
		}
		return nil, fmt.Errorf("unable to find specified revision %d in history", toRevision)
	}
	var prev *api.ControllerRevision
	for _, cr := range revs {
		if cr != cur && (cur == nil || cr.Revision < cur.Revision) && (prev == nil || cr.Revision > prev.Revision) {
			prev = cr
		}
	}
	if prev == nil {
		return nil, errors.New("no rollout history found: there is no earlier revision to roll back to")
	}
	return prev, nil
}

// templatePatch is a merge patch that turns spec.template from cur into
// want exactly: members want lacks are set to null.
func templatePatch(cur, want *api.PodTemplateSpec) (map[string]any, error) {
	var a, b any
	for _, x := range []struct {
		v   *api.PodTemplateSpec
		dst *any
	}{{cur, &a}, {want, &b}} {
		raw, err := json.Marshal(x.v)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(raw, x.dst); err != nil {
			return nil, err
		}
	}
	return map[string]any{"spec": map[string]any{"template": mergeDiff(a, b)}}, nil
}

// mergeDiff returns the RFC 7386 merge patch that turns a into b.
func mergeDiff(a, b any) any {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if !aok || !bok {
		return b
	}
	out := map[string]any{}
	for k := range am {
		if _, ok := bm[k]; !ok {
			out[k] = nil
		}
	}
	for k, bv := range bm {
		av, ok := am[k]
		if ok && reflect.DeepEqual(av, bv) {
			continue
		}
		if ok {
			out[k] = mergeDiff(av, bv)
		} else {
			out[k] = bv
		}
	}
	return out
}

func newRolloutRestartCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "restart (ds/NAME | deploy/NAME)",
		Short: "Restart every pod, as a rollout (sets the template's restartedAt annotation)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := parseWorkload(args, e.ns())
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			patch := map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
				"annotations": map[string]any{annotationRestartedAt: time.Now().UTC().Format(time.RFC3339)}}}}}
			if _, err := c.Patch(ctx, w.kind, w.namespace, w.name, patch); err != nil {
				return err
			}
			fmt.Fprintf(e.out, "%s restarted\n", w)
			return nil
		},
	}
}

// writeColumns writes tab-separated rows aligned as kubectl's tables.
func writeColumns(out io.Writer, rows []string) error {
	tw := newTabWriter(out)
	for _, r := range rows {
		fmt.Fprintln(tw, r)
	}
	return tw.Flush()
}

func newTabWriter(out io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
}
