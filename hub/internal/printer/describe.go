package printer

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Related holds the objects a description shows besides the object itself.
// The CLI fetches them: the pods on a node, or the pods of a DaemonSet.
type Related struct {
	Pods []*api.Pod
	// PodMetrics is the usage of the pods on a node.
	PodMetrics []api.PodMetrics
	// Endpoints are a Service's (nil when it has none).
	Endpoints *api.Endpoints
	// IngressBackends are an Ingress's backend Services, by name.
	IngressBackends map[string]IngressBackend
	// Events are the events about the object; with ShowEvents set, the
	// description ends with them, or with "Events:  <none>".
	Events     []*api.Event
	ShowEvents bool
}

// Describe writes obj the way kubectl describe does: "Field:  value" lines
// aligned per block, nested sections indented by two spaces. now is the
// time ages are measured from (zero means time.Now()).
func Describe(w io.Writer, obj api.Object, rel Related, now time.Time) error {
	now = Options{Now: now}.now()
	d := newDescriber(w)
	switch o := obj.(type) {
	case *api.Pod:
		describePod(d, o)
	case *api.Node:
		describeNode(d, o, rel, now)
	case *api.DaemonSet:
		describeDaemonSet(d, o, rel)
	case *api.Deployment:
		describeDeployment(d, o, rel, now)
	case *api.ControllerRevision:
		describeControllerRevision(d, o)
	case *api.Namespace:
		describeNamespace(d, o)
	case *api.Service:
		describeService(d, o, rel)
	case *api.Endpoints:
		describeEndpoints(d, o)
	case *api.Ingress:
		describeIngress(d, o, rel)
	case *api.IngressClass:
		describeIngressClass(d, o)
	case *api.HorizontalPodAutoscaler:
		describeHPA(d, o)
	default:
		return fmt.Errorf("describe %q: unsupported type %T", obj.GetObjectMeta().Name, obj)
	}
	writeEvents(d, rel, now)
	if err := d.flush(); err != nil {
		return fmt.Errorf("describe %q: %w", obj.GetObjectMeta().Name, err)
	}
	return nil
}

// describer writes indented lines through one tabwriter, with kubectl's
// describe settings, so that the value column of consecutive "Field:\tvalue"
// lines lines up.
type describer struct {
	tw *tabwriter.Writer
}

func newDescriber(w io.Writer) *describer {
	return &describer{tw: tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)}
}

// line writes one line at an indentation level (two spaces per level).
func (d *describer) line(level int, format string, args ...any) {
	// tabwriter remembers the first write error and Flush returns it.
	fmt.Fprintf(d.tw, strings.Repeat("  ", level)+format+"\n", args...)
}

func (d *describer) flush() error { return d.tw.Flush() }

// labels writes a map as kubectl's multi-line Labels: section: the first
// pair beside the title, the others below it in the value column.
func (d *describer) labels(level int, title string, m map[string]string) {
	d.pairs(level, title, m, "=")
}

// annotations is labels with kubectl's "key: value" form.
func (d *describer) annotations(level int, title string, m map[string]string) {
	d.pairs(level, title, m, ": ")
}

func (d *describer) pairs(level int, title string, m map[string]string, sep string) {
	if len(m) == 0 {
		d.line(level, "%s:\t%s", title, none)
		return
	}
	for i, k := range sortedKeys(m) {
		if i == 0 {
			d.line(level, "%s:\t%s%s%s", title, k, sep, m[k])
			continue
		}
		d.line(level, "\t%s%s%s", k, sep, m[k])
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// timestamp formats t as kubectl describe does (RFC 1123 with a numeric
// zone), or <unknown> when unset.
func timestamp(t api.Time) string {
	if t.IsZero() {
		return unknown
	}
	return t.Format(time.RFC1123Z)
}

func describePod(d *describer, p *api.Pod) {
	d.line(0, "Name:\t%s", p.Name)
	d.line(0, "Namespace:\t%s", p.Namespace)
	if p.Spec.NodeName == "" {
		d.line(0, "Node:\t%s", none)
	} else {
		d.line(0, "Node:\t%s/%s", p.Spec.NodeName, p.Status.HostIP)
	}
	if !p.Status.StartTime.IsZero() {
		d.line(0, "Start Time:\t%s", timestamp(p.Status.StartTime))
	}
	d.labels(0, "Labels", p.Labels)
	d.annotations(0, "Annotations", p.Annotations)
	d.line(0, "Status:\t%s", p.Status.Phase)
	if p.Status.Reason != "" {
		d.line(0, "Reason:\t%s", p.Status.Reason)
	}
	if p.Status.Message != "" {
		d.line(0, "Message:\t%s", p.Status.Message)
	}
	d.line(0, "IP:\t%s", podIP(p))
	if len(p.Status.PodIPs) == 0 {
		d.line(0, "IPs:\t%s", none)
	} else {
		d.line(0, "IPs:")
		for _, ip := range p.Status.PodIPs {
			d.line(1, "IP:\t%s", ip.IP)
		}
	}
	d.line(0, "Observed Revision:\t%s", revision(p.Status.ObservedRevision))
	if ref := p.ControllerRef(); ref != nil {
		d.line(0, "Controlled By:\t%s/%s", ref.Kind, ref.Name)
	}
	statuses := map[string]*api.ContainerStatus{}
	for i := range p.Status.ContainerStatuses {
		statuses[p.Status.ContainerStatuses[i].Name] = &p.Status.ContainerStatuses[i]
	}
	d.line(0, "Containers:")
	for _, c := range p.Spec.Containers {
		describeContainer(d, 1, c, statuses[c.Name], true)
	}
	if len(p.Status.Conditions) > 0 {
		d.line(0, "Conditions:")
		d.line(1, "Type\tStatus")
		for _, c := range p.Status.Conditions {
			d.line(1, "%s\t%s", c.Type, c.Status)
		}
	}
	describeVolumes(d, 0, p.Spec.Volumes)
	d.line(0, "Node-Selectors:\t%s", formatLabels(p.Spec.NodeSelector))
}

// describeContainer writes one container at level (its name line), its
// fields one level deeper. withStatus is false for pod templates, which
// have no status; cs may be nil when the agent has not reported it yet.
func describeContainer(d *describer, level int, c api.Container, cs *api.ContainerStatus, withStatus bool) {
	d.line(level, "%s:", c.Name)
	in := level + 1
	if cs != nil && cs.ContainerID != "" {
		d.line(in, "Container ID:\t%s", cs.ContainerID)
	}
	d.line(in, "Image:\t%s", c.Image)
	if cs != nil {
		d.line(in, "Image ID:\t%s", cs.ImageID)
	}
	describePorts(d, in, c.Ports)
	describeStrings(d, in, "Command", c.Command)
	describeStrings(d, in, "Args", c.Args)
	if withStatus {
		if cs == nil {
			d.line(in, "State:\tWaiting")
			d.line(in, "Ready:\tFalse")
			d.line(in, "Restart Count:\t0")
		} else {
			describeState(d, in, "State", cs.State)
			if cs.LastState.Terminated != nil {
				describeState(d, in, "Last State", cs.LastState)
			}
			d.line(in, "Ready:\t%s", boolWord(cs.Ready))
			d.line(in, "Restart Count:\t%d", cs.RestartCount)
		}
	}
	describeResources(d, in, "Limits", c.Resources.Limits)
	describeResources(d, in, "Requests", c.Resources.Requests)
	if len(c.Env) == 0 {
		d.line(in, "Environment:\t%s", none)
	} else {
		d.line(in, "Environment:")
		for _, e := range c.Env {
			d.line(in+1, "%s:\t%s", e.Name, e.Value)
		}
	}
	if len(c.VolumeMounts) == 0 {
		d.line(in, "Mounts:\t%s", none)
	} else {
		d.line(in, "Mounts:")
		for _, m := range c.VolumeMounts {
			mode := "rw"
			if m.ReadOnly {
				mode = "ro"
			}
			d.line(in+1, "%s from %s (%s)", m.MountPath, m.Name, mode)
		}
	}
}

func describePorts(d *describer, level int, ports []api.ContainerPort) {
	if len(ports) == 0 {
		d.line(level, "Port:\t%s", none)
		d.line(level, "Host Port:\t%s", none)
		return
	}
	var cp, hp []string
	for _, p := range ports {
		proto := p.Protocol
		if proto == "" {
			proto = "TCP"
		}
		cp = append(cp, fmt.Sprintf("%d/%s", p.ContainerPort, proto))
		hp = append(hp, fmt.Sprintf("%d/%s", p.HostPort, proto))
	}
	plural := ""
	if len(ports) > 1 {
		plural = "s"
	}
	d.line(level, "Port%s:\t%s", plural, strings.Join(cp, ", "))
	d.line(level, "Host Port%s:\t%s", plural, strings.Join(hp, ", "))
}

// describeStrings writes a command or args list, one element per line.
func describeStrings(d *describer, level int, title string, list []string) {
	if len(list) == 0 {
		return
	}
	d.line(level, "%s:", title)
	for _, s := range list {
		for _, l := range strings.Split(s, "\n") {
			d.line(level+1, "%s", l)
		}
	}
}

// describeState is kubectl's describeStatus: the state's name, then its
// details one level deeper.
func describeState(d *describer, level int, title string, s api.ContainerState) {
	switch {
	case s.Running != nil:
		d.line(level, "%s:\tRunning", title)
		d.line(level+1, "Started:\t%s", timestamp(s.Running.StartedAt))
	case s.Waiting != nil:
		d.line(level, "%s:\tWaiting", title)
		if s.Waiting.Reason != "" {
			d.line(level+1, "Reason:\t%s", s.Waiting.Reason)
		}
		if s.Waiting.Message != "" {
			d.line(level+1, "Message:\t%s", s.Waiting.Message)
		}
	case s.Terminated != nil:
		t := s.Terminated
		d.line(level, "%s:\tTerminated", title)
		if t.Reason != "" {
			d.line(level+1, "Reason:\t%s", t.Reason)
		}
		if t.Message != "" {
			d.line(level+1, "Message:\t%s", t.Message)
		}
		d.line(level+1, "Exit Code:\t%d", t.ExitCode)
		if t.Signal > 0 {
			d.line(level+1, "Signal:\t%d", t.Signal)
		}
		d.line(level+1, "Started:\t%s", timestamp(t.StartedAt))
		d.line(level+1, "Finished:\t%s", timestamp(t.FinishedAt))
	default:
		d.line(level, "%s:\tWaiting", title)
	}
}

func describeResources(d *describer, level int, title string, rl api.ResourceList) {
	if len(rl) == 0 {
		return
	}
	d.line(level, "%s:", title)
	for _, name := range sortedKeys(rl) {
		d.line(level+1, "%s:\t%s", name, rl[name])
	}
}

func describeVolumes(d *describer, level int, vols []api.Volume) {
	if len(vols) == 0 {
		d.line(level, "Volumes:\t%s", none)
		return
	}
	d.line(level, "Volumes:")
	for _, v := range vols {
		d.line(level+1, "%s:", v.Name)
		in := level + 2
		switch {
		case v.HostPath != nil:
			d.line(in, "Type:\tHostPath (bare host directory volume)")
			d.line(in, "Path:\t%s", v.HostPath.Path)
			d.line(in, "HostPathType:\t%s", v.HostPath.Type)
		case v.EmptyDir != nil:
			d.line(in, "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)")
			d.line(in, "Medium:\t%s", v.EmptyDir.Medium)
			limit := "<unset>"
			if v.EmptyDir.SizeLimit != nil {
				limit = v.EmptyDir.SizeLimit.String()
			}
			d.line(in, "SizeLimit:\t%s", limit)
		default:
			d.line(in, "<unknown>")
		}
	}
}

func boolWord(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

func describeNode(d *describer, n *api.Node, rel Related, now time.Time) {
	d.line(0, "Name:\t%s", n.Name)
	d.line(0, "Roles:\t%s", orNone(strings.Join(nodeRoles(n.Labels), ",")))
	d.labels(0, "Labels", n.Labels)
	d.annotations(0, "Annotations", n.Annotations)
	d.line(0, "CreationTimestamp:\t%s", timestamp(n.CreationTimestamp))
	d.line(0, "Unschedulable:\t%t", n.Spec.Unschedulable)
	d.line(0, "Online:\t%t", n.Status.Online)

	if len(n.Status.Conditions) == 0 {
		d.line(0, "Conditions:\t%s", none)
	} else {
		d.line(0, "Conditions:")
		d.line(1, "Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage")
		d.line(1, "----\t------\t-----------------\t------------------\t------\t-------")
		for _, c := range n.Status.Conditions {
			d.line(1, "%s\t%s\t%s\t%s\t%s\t%s", c.Type, c.Status,
				timestamp(c.LastHeartbeatTime), timestamp(c.LastTransitionTime), c.Reason, c.Message)
		}
	}
	if len(n.Status.Addresses) == 0 {
		d.line(0, "Addresses:\t%s", none)
	} else {
		d.line(0, "Addresses:")
		for _, a := range n.Status.Addresses {
			d.line(1, "%s:\t%s", a.Type, a.Address)
		}
	}
	describeResourceList(d, "Capacity", n.Status.Capacity)
	describeResourceList(d, "Allocatable", n.Status.Allocatable)
	describeNodeDevices(d, n)

	info := n.Status.NodeInfo
	d.line(0, "System Info:")
	d.line(1, "Machine ID:\t%s", info.MachineID)
	d.line(1, "Kernel Version:\t%s", info.KernelVersion)
	d.line(1, "OS Image:\t%s", info.OSImage)
	d.line(1, "Operating System:\t%s", info.OperatingSystem)
	d.line(1, "Architecture:\t%s", arch(info))
	d.line(1, "Container Runtime Version:\t%s", info.ContainerRuntimeVersion)
	d.line(1, "Agent Version:\t%s", info.AgentVersion)

	d.line(0, "Revisions:")
	d.line(1, "Desired:\t%s", revision(n.Status.DesiredRevision))
	d.line(1, "Observed:\t%s", revision(n.Status.ObservedRevision))
	if n.Status.LastSeen.IsZero() {
		d.line(1, "Last Seen:\t<never>")
	} else {
		d.line(1, "Last Seen:\t%s (%s ago)", timestamp(n.Status.LastSeen), age(now, n.Status.LastSeen))
	}

	// The agent's store-and-forward queue, as it last said: what waits for
	// the hub and what a full queue made it drop while offline; then what
	// the hub received from the node and could not use. Together they are
	// everything the node reported that the hub does not hold.
	ob := n.Status.Outbox
	d.line(0, "Outbox:")
	d.line(1, "Queued:\t%d", ob.Queued)
	d.line(1, "Dropped:\t%s", countsBy(ob.Dropped, ob.DroppedByClass))
	var hubDropped uint64
	for _, c := range n.Status.IngestDropped {
		hubDropped += c
	}
	d.line(1, "Dropped by hub:\t%s", countsBy(hubDropped, n.Status.IngestDropped))

	describeNodePods(d, n, rel.Pods, now)
	describeNodeUsage(d, n, rel.PodMetrics, now)
}

// countsBy writes a total and its parts: "0", or "52 (event 19, status 33)".
func countsBy(total uint64, by map[string]uint64) string {
	if total == 0 {
		return "0"
	}
	var parts []string
	for _, k := range sortedKeys(by) {
		parts = append(parts, fmt.Sprintf("%s %d", k, by[k]))
	}
	if len(parts) == 0 {
		return fmt.Sprint(total)
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

func describeResourceList(d *describer, title string, rl api.ResourceList) {
	if len(rl) == 0 {
		return
	}
	d.line(0, "%s:", title)
	for _, name := range sortedKeys(rl) {
		d.line(1, "%s:\t%s", name, rl[name])
	}
}

// describeNodePods writes kubectl's "Non-terminated Pods" table and the
// "Allocated resources" summary, with percentages of the node's allocatable
// resources (its capacity when it reports no allocatable).
func describeNodePods(d *describer, n *api.Node, pods []*api.Pod, now time.Time) {
	var running []*api.Pod
	for _, p := range pods {
		if p.Status.Phase != api.PodSucceeded && p.Status.Phase != api.PodFailed {
			running = append(running, p)
		}
	}
	alloc := n.Status.Allocatable
	if len(alloc) == 0 {
		alloc = n.Status.Capacity
	}
	cpuAlloc := alloc[api.ResourceCPU].MilliValue()
	memAlloc := alloc[api.ResourceMemory].Value()

	d.line(0, "Non-terminated Pods:\t(%d in total)", len(running))
	d.line(1, "Namespace\tName\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge")
	d.line(1, "---------\t----\t------------\t----------\t---------------\t-------------\t---")
	total := newPodResources()
	for _, p := range running {
		r := resourcesOf(p)
		total.add(r)
		d.line(1, "%s\t%s\t%s\t%s\t%s\t%s\t%s", p.Namespace, p.Name,
			r.cpuReq.percentOf(cpuAlloc), r.cpuLim.percentOf(cpuAlloc),
			r.memReq.percentOf(memAlloc), r.memLim.percentOf(memAlloc),
			age(now, p.CreationTimestamp))
	}
	d.line(0, "Allocated resources:")
	d.line(1, "(Total limits may be over 100 percent, i.e., overcommitted.)")
	d.line(1, "Resource\tRequests\tLimits")
	d.line(1, "--------\t--------\t------")
	d.line(1, "cpu\t%s\t%s", total.cpuReq.percentOf(cpuAlloc), total.cpuLim.percentOf(cpuAlloc))
	d.line(1, "memory\t%s\t%s", total.memReq.percentOf(memAlloc), total.memLim.percentOf(memAlloc))
	describeDeviceAllocation(d, alloc, running)
}

// amount is a sum of quantities of one resource: its value (millicores for
// cpu, bytes for memory) and, while it has a single term, that term's text.
type amount struct {
	value int64
	text  string
	terms int
	cpu   bool
}

func (a *amount) add(q api.Quantity) {
	if a.cpu {
		a.value += q.MilliValue()
	} else {
		a.value += q.Value()
	}
	a.terms++
	a.text = q.String()
}

func (a *amount) addAmount(b amount) {
	if b.terms == 0 {
		return
	}
	a.value += b.value
	a.terms += b.terms
	a.text = b.text
}

// String keeps the quantity as written when there is one, else renders the
// sum exactly: "1500m" or "2" for cpu, "192Mi" or bytes for memory.
func (a amount) String() string {
	switch {
	case a.terms == 0:
		return "0"
	case a.terms == 1:
		return a.text
	case a.cpu && a.value%1000 == 0:
		return fmt.Sprintf("%d", a.value/1000)
	case a.cpu:
		return fmt.Sprintf("%dm", a.value)
	}
	return exactBytes(a.value)
}

// percentOf is kubectl's "250m (6%)", or just the amount when the node did
// not report the resource.
func (a amount) percentOf(total int64) string {
	if total <= 0 {
		return a.String()
	}
	return fmt.Sprintf("%s (%d%%)", a, int64(float64(a.value)/float64(total)*100))
}

// exactBytes renders n with the largest binary suffix that divides it
// ("1536Mi", not api.FormatBytes's rounded-down "1Gi"), or in bytes.
func exactBytes(n int64) string {
	units := []struct {
		size   int64
		suffix string
	}{{1 << 40, "Ti"}, {1 << 30, "Gi"}, {1 << 20, "Mi"}, {1 << 10, "Ki"}}
	for _, u := range units {
		if n != 0 && n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.suffix)
		}
	}
	return fmt.Sprintf("%d", n)
}

// podResources are a pod's summed container requests and limits.
type podResources struct {
	cpuReq, cpuLim, memReq, memLim amount
}

func newPodResources() podResources {
	return podResources{cpuReq: amount{cpu: true}, cpuLim: amount{cpu: true}}
}

func (r *podResources) add(o podResources) {
	r.cpuReq.addAmount(o.cpuReq)
	r.cpuLim.addAmount(o.cpuLim)
	r.memReq.addAmount(o.memReq)
	r.memLim.addAmount(o.memLim)
}

// resourcesOf sums the pod's container resources. A container with a limit
// but no request requests its limit, as Kubernetes defaults it.
func resourcesOf(p *api.Pod) podResources {
	r := newPodResources()
	for _, c := range p.Spec.Containers {
		for _, res := range []struct {
			name     string
			req, lim *amount
		}{
			{api.ResourceCPU, &r.cpuReq, &r.cpuLim},
			{api.ResourceMemory, &r.memReq, &r.memLim},
		} {
			lim, hasLim := c.Resources.Limits[res.name]
			req, hasReq := c.Resources.Requests[res.name]
			if !hasReq && hasLim {
				req, hasReq = lim, true
			}
			if hasReq {
				res.req.add(req)
			}
			if hasLim {
				res.lim.add(lim)
			}
		}
	}
	return r
}

func describeDaemonSet(d *describer, ds *api.DaemonSet, rel Related) {
	st := ds.Status
	d.line(0, "Name:\t%s", ds.Name)
	d.line(0, "Namespace:\t%s", ds.Namespace)
	d.line(0, "Selector:\t%s", formatSelector(ds.Spec.Selector))
	d.line(0, "Node-Selector:\t%s", formatLabels(ds.Spec.Template.Spec.NodeSelector))
	d.labels(0, "Labels", ds.Labels)
	d.annotations(0, "Annotations", ds.Annotations)
	d.line(0, "Desired Number of Nodes Scheduled: %d", st.DesiredNumberScheduled)
	d.line(0, "Current Number of Nodes Scheduled: %d", st.CurrentNumberScheduled)
	d.line(0, "Number of Nodes Scheduled with Up-to-date Pods: %d", st.UpdatedNumberScheduled)
	d.line(0, "Number of Nodes Scheduled with Available Pods: %d", st.NumberAvailable)
	d.line(0, "Number of Nodes Scheduled with Ready Pods: %d", st.NumberReady)
	d.line(0, "Number of Nodes Misscheduled: %d", st.NumberMisscheduled)
	phases := map[api.PodPhase]int{}
	for _, p := range rel.Pods {
		phases[p.Status.Phase]++
	}
	d.line(0, "Pods Status:\t%d Running / %d Waiting / %d Succeeded / %d Failed",
		phases[api.PodRunning], phases[api.PodPending], phases[api.PodSucceeded], phases[api.PodFailed])
	describePodTemplate(d, &ds.Spec.Template)
	describeDaemonSetStrategy(d, ds)
	describeRollout(d, st.Rollout)
}

// describePodTemplate is kubectl's "Pod Template:" section.
func describePodTemplate(d *describer, t *api.PodTemplateSpec) {
	d.line(0, "Pod Template:")
	d.labels(1, "Labels", t.Labels)
	if len(t.Annotations) > 0 {
		d.annotations(1, "Annotations", t.Annotations)
	}
	d.line(1, "Containers:")
	for _, c := range t.Spec.Containers {
		describeContainer(d, 2, c, nil, false)
	}
	describeVolumes(d, 1, t.Spec.Volumes)
	d.line(1, "Node-Selectors:\t%s", formatLabels(t.Spec.NodeSelector))
}

func describeNamespace(d *describer, ns *api.Namespace) {
	d.line(0, "Name:\t%s", ns.Name)
	d.labels(0, "Labels", ns.Labels)
	d.annotations(0, "Annotations", ns.Annotations)
	d.line(0, "Status:\t%s", ns.Status.Phase)
}
