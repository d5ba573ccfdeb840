package autoscaler

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Resource indexes the two resources an autoscaler follows.
type Resource int

// The resources, as indexes into a Pod's per-resource fields.
const (
	CPU Resource = iota
	Memory
	numResources
)

func (r Resource) String() string {
	if r == CPU {
		return api.ResourceCPU
	}
	return api.ResourceMemory
}

func resourceOf(name string) (Resource, bool) {
	switch name {
	case api.ResourceCPU:
		return CPU, true
	case api.ResourceMemory:
		return Memory, true
	}
	return 0, false
}

// Pod is what the replica calculation knows of one of the target's pods.
// Amounts are in thousandths of their unit (millicores, millibytes), as
// Kubernetes' calculator counts them.
type Pod struct {
	Name  string
	Phase api.PodPhase
	// Ready is the pod's Ready condition ("" when it has none);
	// ReadySince is when it last changed, zero when the hub does not
	// know, and then StartTime stands for it.
	Ready      api.ConditionStatus
	ReadySince time.Time
	StartTime  time.Time
	// Request is the sum of the containers' requests of each resource;
	// NoRequest names a container that requests none ("" when all do).
	Request   [numResources]int64
	NoRequest [numResources]string
	// Usage is the pod's usage of each resource in the sample, where
	// HasUsage says it has one. Missing, when set, says why the pod has
	// no current sample at all (its node is not Ready, its samples are
	// stale): its usage is missing, never zero.
	Usage      [numResources]int64
	HasUsage   [numResources]bool
	SampleTime time.Time
	Window     time.Duration
	Missing    string
}

// Calculator computes replica counts from pods' usage as Kubernetes'
// replica calculator does.
type Calculator struct {
	// Tolerance is how far the usage ratio may be from 1 without a
	// change (Kubernetes' 0.1).
	Tolerance float64
	// CPUInitializationPeriod is how long after a pod starts its cpu
	// samples are distrusted unless it is Ready and sampled since (5 min);
	// InitialReadinessDelay is how long after it starts a pod that is not
	// Ready counts as never having been (30 s).
	CPUInitializationPeriod time.Duration
	InitialReadinessDelay   time.Duration
	Now                     time.Time
}

// DefaultCalculator has Kubernetes' settings, at now.
func DefaultCalculator(now time.Time) Calculator {
	return Calculator{Tolerance: 0.1, CPUInitializationPeriod: 5 * time.Minute, InitialReadinessDelay: 30 * time.Second, Now: now}
}

// Estimate is what one metric says.
type Estimate struct {
	// Replicas is the count the metric asks for.
	Replicas int32
	// Utilization is the usage in percent of the requests (Utilization
	// targets); Average the usage per pod, in thousandths. Both are over
	// the pods with a current sample, not adjusted for missing or unready
	// pods, as Kubernetes reports them.
	Utilization int32
	Average     int64
	// Timestamp is the newest sample used.
	Timestamp time.Time
	// Ready, Unready, Missing and Ignored count the pods by how they
	// counted: measured, set aside as not ready, without a current
	// sample, left out (not running, finished).
	Ready, Unready, Missing, Ignored int
}

// ErrNoPods: the target has no pods to measure.
var ErrNoPods = errors.New("no pods returned by selector while calculating replica count")

// groups sorts the pods for resource r as Kubernetes' groupPods does,
// and returns the usage of the measured ones by index.
type groups struct {
	measured            map[int]int64
	unready, missing    []int
	ignored, readyCount int
	newest              time.Time
	missingWhy          []string
}

func (c Calculator) group(pods []Pod, r Resource) groups {
	g := groups{measured: make(map[int]int64, len(pods))}
	for i := range pods {
		p := &pods[i]
		switch p.Phase {
		case api.PodFailed, api.PodSucceeded, api.PodPending, "":
			// Finished pods use nothing; pending ones do not run yet.
			g.ignored++
			continue
		}
		if !p.HasUsage[r] {
			g.missing = append(g.missing, i)
			if p.Missing != "" && len(g.missingWhy) < 3 && !slices.Contains(g.missingWhy, p.Missing) {
				g.missingWhy = append(g.missingWhy, p.Missing)
			}
			continue
		}
		if r == CPU && c.unready(p) {
			g.unready = append(g.unready, i)
			continue
		}
		g.readyCount++
		g.measured[i] = p.Usage[r]
		if p.SampleTime.After(g.newest) {
			g.newest = p.SampleTime
		}
	}
	return g
}

// unready is Kubernetes' rule for a pod whose cpu samples are set aside:
// it has no Ready condition or start time; or it started within the
// initialization period and is not Ready, or has not been sampled for a
// whole window since it became Ready; or, later, it is not Ready and
// never was (it turned not Ready within the readiness delay of its start).
func (c Calculator) unready(p *Pod) bool {
	if p.Ready == "" || p.StartTime.IsZero() {
		return true
	}
	since := p.ReadySince
	if since.IsZero() {
		since = p.StartTime
	}
	if p.StartTime.Add(c.CPUInitializationPeriod).After(c.Now) {
		return p.Ready != api.ConditionTrue || p.SampleTime.Before(since.Add(p.Window))
	}
	return p.Ready == api.ConditionFalse && p.StartTime.Add(c.InitialReadinessDelay).After(since)
}

// noMetrics is the error when no pod had a usable sample, with why the
// missing ones had none: their usage is unknown, not zero.
func noMetrics(g groups) error {
	msg := "did not receive metrics for targeted pods (pods might be unready)"
	if len(g.missing) > 0 {
		msg = fmt.Sprintf("did not receive metrics for targeted pods: %d without a current sample", len(g.missing))
		if len(g.missingWhy) > 0 {
			msg += " (" + strings.Join(g.missingWhy, "; ") + ")"
		}
		msg += "; missing metrics are not zero load"
		if len(g.unready) > 0 {
			msg += fmt.Sprintf(", and %d not ready", len(g.unready))
		}
	}
	return errors.New(msg)
}

// UtilizationReplicas is Kubernetes' GetResourceReplicas: the count that
// brings the pods' usage of r to target percent of their requests.
func (c Calculator) UtilizationReplicas(current, target int32, r Resource, pods []Pod) (Estimate, error) {
	if len(pods) == 0 {
		return Estimate{}, ErrNoPods
	}
	// Every pod must request the resource, as Kubernetes' requests check.
	for i := range pods {
		if ct := pods[i].NoRequest[r]; ct != "" || pods[i].Request[r] <= 0 {
			if ct == "" {
				ct = "(all)"
			}
			return Estimate{}, fmt.Errorf("missing request for %s in container %s of Pod %s", r, ct, pods[i].Name)
		}
	}
	g := c.group(pods, r)
	est := Estimate{Ready: g.readyCount, Unready: len(g.unready), Missing: len(g.missing), Ignored: g.ignored, Timestamp: g.newest}
	if len(g.measured) == 0 {
		return est, noMetrics(g)
	}
	ratio, util, avg := utilizationRatio(g.measured, pods, r, target)
	est.Utilization, est.Average = util, avg
	withUnready := len(g.unready) > 0 && ratio > 1.0
	if !withUnready && len(g.missing) == 0 {
		if c.within(ratio) {
			est.Replicas = current
			return est, nil
		}
		est.Replicas = int32(math.Ceil(ratio * float64(g.readyCount)))
		return est, nil
	}
	// Pods without samples: as using all they request (or the target,
	// when that is more) on the way down, nothing on the way up; not
	// ready pods: nothing, on the way up.
	if len(g.missing) > 0 {
		fallback := int64(max(100, target))
		for _, i := range g.missing {
			switch {
			case ratio < 1.0:
				g.measured[i] = pods[i].Request[r] * fallback / 100
			case ratio > 1.0:
				g.measured[i] = 0
			}
		}
	}
	if withUnready {
		for _, i := range g.unready {
			g.measured[i] = 0
		}
	}
	newRatio, _, _ := utilizationRatio(g.measured, pods, r, target)
	est.Replicas = c.adjusted(current, ratio, newRatio, len(g.measured))
	return est, nil
}

// AverageValueReplicas is Kubernetes' GetRawResourceReplicas: the count
// that brings the pods' average usage of r to target (thousandths).
func (c Calculator) AverageValueReplicas(current int32, target int64, r Resource, pods []Pod) (Estimate, error) {
	if len(pods) == 0 {
		return Estimate{}, ErrNoPods
	}
	g := c.group(pods, r)
	est := Estimate{Ready: g.readyCount, Unready: len(g.unready), Missing: len(g.missing), Ignored: g.ignored, Timestamp: g.newest}
	if len(g.measured) == 0 {
		return est, noMetrics(g)
	}
	ratio, avg := usageRatio(g.measured, target)
	est.Average = avg
	withUnready := len(g.unready) > 0 && ratio > 1.0
	if !withUnready && len(g.missing) == 0 {
		if c.within(ratio) {
			est.Replicas = current
			return est, nil
		}
		est.Replicas = int32(math.Ceil(ratio * float64(g.readyCount)))
		return est, nil
	}
	for _, i := range g.missing {
		switch {
		case ratio < 1.0:
			g.measured[i] = target
		case ratio > 1.0:
			g.measured[i] = 0
		}
	}
	if withUnready {
		for _, i := range g.unready {
			g.measured[i] = 0
		}
	}
	newRatio, _ := usageRatio(g.measured, target)
	est.Replicas = c.adjusted(current, ratio, newRatio, len(g.measured))
	return est, nil
}

// adjusted is the count from the ratio recomputed with missing and
// unready pods filled in: no change if that ratio is within tolerance or
// turned the direction around, or if the count it gives moves against
// it.
func (c Calculator) adjusted(current int32, ratio, newRatio float64, pods int) int32 {
	if c.within(newRatio) || (ratio < 1.0 && newRatio > 1.0) || (ratio > 1.0 && newRatio < 1.0) {
		return current
	}
	n := int32(math.Ceil(newRatio * float64(pods)))
	if (newRatio < 1.0 && n > current) || (newRatio > 1.0 && n < current) {
		return current
	}
	return n
}

func (c Calculator) within(ratio float64) bool { return math.Abs(1.0-ratio) <= c.Tolerance }

// utilizationRatio is the usage of the measured pods over their
// requests: the ratio to the target, the utilization in whole percent
// (truncated, as Kubernetes computes it, and the ratio follows from it)
// and the average usage.
func utilizationRatio(measured map[int]int64, pods []Pod, r Resource, target int32) (ratio float64, util int32, avg int64) {
	var usage, requests int64
	for i, u := range measured {
		usage += u
		requests += pods[i].Request[r]
	}
	if requests == 0 || len(measured) == 0 {
		return 0, 0, 0
	}
	util = int32(usage * 100 / requests)
	return float64(util) / float64(target), util, usage / int64(len(measured))
}

// usageRatio is the average usage of the measured pods over the target.
func usageRatio(measured map[int]int64, target int64) (float64, int64) {
	var usage int64
	for _, u := range measured {
		usage += u
	}
	avg := usage / int64(len(measured))
	return float64(avg) / float64(target), avg
}
