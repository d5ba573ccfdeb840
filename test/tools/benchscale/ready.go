package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/test/scale"
)

// readyWatch follows one rollout's Ready count (status.rollout.ready) from
// poll to poll and keeps every decrease. Within one template the count
// should only grow: a pod Ready on the new template that stops being Ready
// is a fault somewhere (or a real crash), and a rollout gate reading the
// count would stall or move on too soon. A status of another template (the
// previous rollout's, before the controller's first pass) starts afresh.
type readyWatch struct {
	hash  string
	last  int32
	drops []readyDrop
}

// readyDrop is one decrease: Ready went from From to To between two polls.
type readyDrop struct {
	At             time.Time
	From, To       int32
	Updated, Total int32
	Unavailable    int32
}

func (d readyDrop) String() string {
	return fmt.Sprintf("%s Ready %d → %d (%d/%d updated, %d unavailable)", d.At.Format("15:04:05.000"), d.From, d.To, d.Updated, d.Total, d.Unavailable)
}

// see takes one poll's status; it reports a decrease since the last poll
// of the same template.
func (w *readyWatch) see(ro *api.RolloutStatus, at time.Time) (readyDrop, bool) {
	if ro == nil {
		return readyDrop{}, false
	}
	if ro.TemplateHash != w.hash {
		w.hash, w.last = ro.TemplateHash, ro.Ready
		return readyDrop{}, false
	}
	prev := w.last
	w.last = ro.Ready
	if ro.Ready >= prev {
		return readyDrop{}, false
	}
	d := readyDrop{At: at, From: prev, To: ro.Ready, Updated: ro.Updated, Total: ro.Total, Unavailable: ro.Unavailable}
	w.drops = append(w.drops, d)
	return d, true
}

// lost is the sum of every decrease.
func (w *readyWatch) lost() int {
	n := 0
	for _, d := range w.drops {
		n += int(d.From - d.To)
	}
	return n
}

// summary describes the decreases for a figure's detail.
func (w *readyWatch) summary() string {
	if len(w.drops) == 0 {
		return "Ready never went down"
	}
	worst := w.drops[0]
	for _, d := range w.drops[1:] {
		if d.From-d.To > worst.From-worst.To {
			worst = d
		}
	}
	return fmt.Sprintf("%d decrease(s), %d pod(s) in all; the largest at %s", len(w.drops), w.lost(), worst)
}

// labelRevisionHash is the label the DaemonSet controller puts on its pods
// with their template's hash (its own package is the hub's, internal).
const labelRevisionHash = "controller-revision-hash"

// whyNotReady lists the pods of the DaemonSet's template hash that are not
// Ready on it, grouped by what their status says, and the nodes that are
// not Ready: what a decrease of the rollout's Ready count is made of.
func whyNotReady(ctx context.Context, hub *scale.Hub, namespace, dsName, hash string) (string, error) {
	pods, err := hub.Pods(ctx, namespace)
	if err != nil {
		return "", err
	}
	nodes, err := hub.Nodes(ctx)
	if err != nil {
		return "", err
	}
	nodeReady := map[string]bool{}
	notReadyNodes := map[string]int{}
	for i := range nodes {
		n := &nodes[i]
		nodeReady[n.Name] = n.IsReady()
		if !n.IsReady() {
			reason := "?"
			if c := n.Status.Condition(api.NodeReady); c != nil {
				reason = string(c.Status) + "/" + c.Reason
			}
			notReadyNodes[reason]++
		}
	}
	groups := map[string]int{}
	for i := range pods {
		p := &pods[i]
		if p.Labels["app"] != dsName || p.Labels[labelRevisionHash] != hash {
			continue
		}
		specOK := p.Status.SpecHash == api.HashPodSpec(&p.Spec)
		if p.IsReady() && specOK {
			continue
		}
		var why []string
		if !specOK {
			why = append(why, "status of another spec")
		}
		why = append(why, "phase "+string(p.Status.Phase))
		if p.Status.Reason != "" {
			why = append(why, "reason "+p.Status.Reason)
		}
		for _, c := range p.Status.ContainerStatuses {
			switch {
			case c.State.Waiting != nil:
				why = append(why, "waiting "+c.State.Waiting.Reason)
			case c.State.Running != nil && !c.Ready:
				why = append(why, "running, not ready")
			case c.State.Terminated != nil:
				why = append(why, fmt.Sprintf("terminated %d", c.State.Terminated.ExitCode))
			}
		}
		if !nodeReady[p.Spec.NodeName] {
			why = append(why, "node not Ready")
		}
		groups[strings.Join(why, ", ")]++
	}
	var parts []string
	for k, n := range groups {
		parts = append(parts, fmt.Sprintf("%d: %s", n, k))
	}
	sort.Strings(parts)
	var nodeParts []string
	for k, n := range notReadyNodes {
		nodeParts = append(nodeParts, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(nodeParts)
	return fmt.Sprintf("pods not Ready on the template: [%s]; nodes not Ready: [%s]", strings.Join(parts, "; "), strings.Join(nodeParts, "; ")), nil
}

// progressLine is one progress line of the rollout of image to the
// DaemonSet name, from the status the hub shows; current says it is the
// status of the template being applied. Each line names the image and the
// revision its counts are of, so that the lines of two rollouts in a row
// (a creation, then an update) do not read as one whose Ready went down,
// and the previous rollout's status, shown until the controller's first
// pass over the new template, is not taken for the new one's.
func progressLine(at time.Time, name, image string, ro *api.RolloutStatus, current bool) string {
	counts := fmt.Sprintf("%d/%d updated, %d ready, %d unavailable", ro.Updated, ro.Total, ro.Ready, ro.Unavailable)
	if !current {
		return fmt.Sprintf("    %s %s → %s: not planned yet (the hub still shows revision %d: %s)", at.Format("15:04:05"), name, image, ro.Revision, counts)
	}
	return fmt.Sprintf("    %s %s → %s, revision %d: %s", at.Format("15:04:05"), name, image, ro.Revision, counts)
}
