package printer

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// describeDaemonSetStrategy writes the update strategy and Flotilla's
// rollout settings.
func describeDaemonSetStrategy(d *describer, ds *api.DaemonSet) {
	us := ds.Spec.UpdateStrategy
	typ := us.Type
	if typ == "" {
		typ = api.RollingUpdateStrategy
	}
	d.line(0, "Strategy:")
	d.line(1, "Type:\t%s", typ)
	if typ == api.RollingUpdateStrategy {
		unav, surge := "1", "0"
		if ru := us.RollingUpdate; ru != nil {
			if ru.MaxUnavailable != nil {
				unav = ru.MaxUnavailable.String()
			}
			if ru.MaxSurge != nil {
				surge = ru.MaxSurge.String()
			}
		}
		d.line(1, "Rolling Update:\t%s max unavailable, %s max surge", unav, surge)
	}
	d.line(1, "Min Ready Seconds:\t%d", ds.Spec.MinReadySeconds)
	r := ds.Spec.Rollout
	if r == nil {
		return
	}
	d.line(0, "Fleet Rollout:")
	if c := r.Canary; c != nil {
		var picks []string
		if len(c.NodeSelector) > 0 {
			picks = append(picks, "nodes "+formatLabels(c.NodeSelector))
		}
		if c.Count != nil {
			picks = append(picks, c.Count.String()+" node(s)")
		}
		pause := "until resumed"
		if c.PauseSeconds != nil {
			pause = fmt.Sprintf("%ds", *c.PauseSeconds)
		}
		d.line(1, "Canary:\t%s, then pause %s", strings.Join(picks, ", "), pause)
	}
	maxFailures := "0"
	if r.MaxFailures != nil {
		maxFailures = r.MaxFailures.String()
	}
	d.line(1, "Max Failures:\t%s", maxFailures)
	d.line(1, "On Failure:\t%s", orDefault(r.OnFailure, api.OnFailurePause))
	d.line(1, "Offline Nodes:\t%s", orDefault(r.OfflineNodes, api.OfflineSkip))
	if r.ProgressDeadlineSeconds != nil {
		d.line(1, "Progress Deadline:\t%ds", *r.ProgressDeadlineSeconds)
	}
	d.line(1, "Pre-pull:\t%t", r.PrePull)
	d.line(1, "Paused:\t%t", r.Paused)
}

func orDefault[T ~string](s, def T) T {
	if s == "" {
		return def
	}
	return s
}

// describeRollout writes where the current rollout stands.
func describeRollout(d *describer, ro *api.RolloutStatus) {
	if ro == nil {
		return
	}
	d.line(0, "Rollout:")
	d.line(1, "Revision:\t%d", ro.Revision)
	d.line(1, "Phase:\t%s", ro.Phase)
	if ro.Message != "" {
		d.line(1, "Message:\t%s", ro.Message)
	}
	d.line(1, "Nodes:\t%d updated, %d ready, %d unavailable, %d failed, %d offline-pending, %d total",
		ro.Updated, ro.Ready, ro.Unavailable, ro.Failed, ro.OfflinePending, ro.Total)
	if ro.PrePulled > 0 {
		d.line(1, "Pre-pulled:\t%d/%d", ro.PrePulled, ro.Total)
	}
	if len(ro.Updating) > 0 {
		d.line(1, "Updating:\t%s", strings.Join(ro.Updating, ", "))
	}
	if len(ro.FailedNodes) > 0 {
		d.line(1, "Failed Nodes:")
		for _, f := range ro.FailedNodes {
			d.line(2, "%s:\t%s", f.Node, f.Reason)
		}
	}
	if len(ro.OfflinePendingNodes) > 0 {
		names := strings.Join(ro.OfflinePendingNodes, ", ")
		if more := int(ro.OfflinePending) - len(ro.OfflinePendingNodes); more > 0 {
			names += fmt.Sprintf(" and %d more", more)
		}
		d.line(1, "Offline Pending:\t%s", names)
	}
	if f := ro.Failure; f != nil {
		d.line(1, "Failure:")
		d.line(2, "Revision:\t%d", f.Revision)
		if f.RolledBackTo > 0 {
			d.line(2, "Rolled Back To:\t%d", f.RolledBackTo)
		}
		d.line(2, "Reason:\t%s", f.Message)
		d.line(2, "At:\t%s", timestamp(f.Time))
		for _, n := range f.Nodes {
			d.line(2, "%s:\t%s", n.Node, n.Reason)
		}
	}
	if ro.LastGoodRevision > 0 {
		d.line(1, "Last Good Revision:\t%d", ro.LastGoodRevision)
	}
	if !ro.StartedAt.IsZero() {
		d.line(1, "Started:\t%s", timestamp(ro.StartedAt))
	}
}

func describeDeployment(d *describer, dep *api.Deployment, rel Related, now time.Time) {
	st := dep.Status
	replicas := int32(1)
	if dep.Spec.Replicas != nil {
		replicas = *dep.Spec.Replicas
	}
	d.line(0, "Name:\t%s", dep.Name)
	d.line(0, "Namespace:\t%s", dep.Namespace)
	d.line(0, "CreationTimestamp:\t%s", timestamp(dep.CreationTimestamp))
	d.labels(0, "Labels", dep.Labels)
	d.annotations(0, "Annotations", dep.Annotations)
	d.line(0, "Selector:\t%s", formatSelector(dep.Spec.Selector))
	d.line(0, "Replicas:\t%d desired | %d updated | %d total | %d available | %d unavailable",
		replicas, st.UpdatedReplicas, st.Replicas, st.AvailableReplicas, st.UnavailableReplicas)
	typ := dep.Spec.Strategy.Type
	if typ == "" {
		typ = api.RollingUpdateStrategy
	}
	d.line(0, "StrategyType:\t%s", typ)
	d.line(0, "MinReadySeconds:\t%d", dep.Spec.MinReadySeconds)
	if typ == api.RollingUpdateStrategy {
		unav, surge := "25%", "25%"
		if ru := dep.Spec.Strategy.RollingUpdate; ru != nil {
			if ru.MaxUnavailable != nil {
				unav = ru.MaxUnavailable.String()
			}
			if ru.MaxSurge != nil {
				surge = ru.MaxSurge.String()
			}
		}
		d.line(0, "RollingUpdateStrategy:\t%s max unavailable, %s max surge", unav, surge)
	}
	if dep.Spec.Paused {
		d.line(0, "Paused:\ttrue")
	}
	describePodTemplate(d, &dep.Spec.Template)
	if len(st.Conditions) == 0 {
		d.line(0, "Conditions:\t%s", none)
	} else {
		d.line(0, "Conditions:")
		d.line(1, "Type\tStatus\tReason")
		d.line(1, "----\t------\t------")
		for _, c := range st.Conditions {
			d.line(1, "%s\t%s\t%s", c.Type, c.Status, c.Reason)
		}
	}
	describeRollout(d, st.Rollout)
	pods := append([]*api.Pod(nil), rel.Pods...)
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	if len(pods) == 0 {
		d.line(0, "Pods:\t%s", none)
		return
	}
	d.line(0, "Pods:")
	d.line(1, "Name\tNode\tStatus\tAge")
	d.line(1, "----\t----\t------\t---")
	for _, p := range pods {
		d.line(1, "%s\t%s\t%s\t%s", p.Name, orNone(p.Spec.NodeName), summarizePod(p).status, age(now, p.CreationTimestamp))
	}
}

func describeControllerRevision(d *describer, cr *api.ControllerRevision) {
	d.line(0, "Name:\t%s", cr.Name)
	d.line(0, "Namespace:\t%s", cr.Namespace)
	d.labels(0, "Labels", cr.Labels)
	d.annotations(0, "Annotations", cr.Annotations)
	d.line(0, "Controlled By:\t%s", controllerName(cr.ControllerRef()))
	d.line(0, "Revision:\t%d", cr.Revision)
	d.line(0, "CreationTimestamp:\t%s", timestamp(cr.CreationTimestamp))
	describePodTemplate(d, &cr.Data)
}

// DescribeTemplate writes a pod template as describe shows it, for
// `hub rollout history --revision=N`.
func DescribeTemplate(w io.Writer, t *api.PodTemplateSpec) error {
	d := newDescriber(w)
	describePodTemplate(d, t)
	return d.flush()
}
