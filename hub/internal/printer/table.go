package printer

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// kubectl's table writer settings (k8s.io/cli-runtime printers): cells are
// at least 6 wide and separated by at least 3 spaces.
const (
	tableMinWidth = 6
	tableTabWidth = 4
	tablePadding  = 3
)

const (
	none    = "<none>"
	unknown = "<unknown>"
)

// table is a header row and data rows of equal length.
type table struct {
	headers []string
	rows    [][]string
}

// PrintTable writes objs, all of the given kind (any kind but
// api.KindEvent's own columns are kubectl's for that kind), as kubectl
// get's table. An empty
// list writes nothing and returns ErrNoResources.
func PrintTable(w io.Writer, kind string, objs []api.Object, opts Options) error {
	info, ok := api.LookupKind(kind)
	if !ok {
		return fmt.Errorf("print table: unsupported kind %q", kind)
	}
	if len(objs) == 0 {
		return ErrNoResources
	}
	t, err := buildTable(kind, objs, opts)
	if err != nil {
		return fmt.Errorf("print %s table: %w", info.Resource, err)
	}
	if opts.WithKind && kind != api.KindEvent {
		for _, r := range t.rows {
			r[0] = ObjectName(info, r[0])
		}
	}
	if opts.AllNamespaces && info.Namespaced {
		t.headers = append([]string{"NAMESPACE"}, t.headers...)
		for i, o := range objs {
			t.rows[i] = append([]string{o.GetObjectMeta().Namespace}, t.rows[i]...)
		}
	}
	if opts.ShowLabels {
		t.headers = append(t.headers, "LABELS")
		for i, o := range objs {
			t.rows[i] = append(t.rows[i], formatLabels(o.GetObjectMeta().Labels))
		}
	}
	return writeTable(w, t, !opts.NoHeaders)
}

func buildTable(kind string, objs []api.Object, opts Options) (table, error) {
	now := opts.now()
	var t table
	for _, o := range objs {
		var row []string
		switch kind {
		case api.KindPod:
			p, ok := o.(*api.Pod)
			if !ok {
				return t, wrongType(kind, o)
			}
			t.headers, row = podRow(p, opts.Wide, now)
		case api.KindNode:
			n, ok := o.(*api.Node)
			if !ok {
				return t, wrongType(kind, o)
			}
			t.headers, row = nodeRow(n, opts.Wide, now)
		case api.KindDaemonSet:
			ds, ok := o.(*api.DaemonSet)
			if !ok {
				return t, wrongType(kind, o)
			}
			t.headers, row = daemonSetRow(ds, opts.Wide, now)
		case api.KindEvent:
			e, ok := o.(*api.Event)
			if !ok {
				return t, wrongType(kind, o)
			}
			t.headers, row = eventRow(e, now)
		case api.KindDeployment:
			d, ok := o.(*api.Deployment)
			if !ok {
				return t, wrongType(kind, o)
			}
			t.headers, row = deploymentRow(d, opts.Wide, now)
		case api.KindControllerRevision:
			cr, ok := o.(*api.ControllerRevision)
			if !ok {
				return t, wrongType(kind, o)
			}
			t.headers, row = controllerRevisionRow(cr, now)
		case api.KindNamespace:
			ns, ok := o.(*api.Namespace)
			if !ok {
				return t, wrongType(kind, o)
			}
			t.headers, row = namespaceRow(ns, now)
		case api.KindSecret:
			sec, ok := o.(*api.Secret)
			if !ok {
				return t, wrongType(kind, o)
			}
			t.headers, row = secretRow(sec, now)
		case api.KindConfigMap:
			cm, ok := o.(*api.ConfigMap)
			if !ok {
				return t, wrongType(kind, o)
			}
			t.headers, row = configMapRow(cm, now)
		case api.KindService:
			svc, ok := o.(*api.Service)
			if !ok {
				return t, wrongType(kind, o)
			}
			t.headers, row = serviceRow(svc, opts.Wide, now)
		case api.KindEndpoints:
			ep, ok := o.(*api.Endpoints)
			if !ok {
				return t, wrongType(kind, o)
			}
			t.headers, row = endpointsRow(ep, now)
		case api.KindIngress:
			in, ok := o.(*api.Ingress)
			if !ok {
				return t, wrongType(kind, o)
			}
			t.headers, row = ingressRow(in, opts.Wide, now)
		case api.KindIngressClass:
			c, ok := o.(*api.IngressClass)
			if !ok {
				return t, wrongType(kind, o)
			}
			t.headers, row = ingressClassRow(c, now)
		case api.KindCertificateSigningRequest:
			csr, ok := o.(*api.CertificateSigningRequest)
			if !ok {
				return t, wrongType(kind, o)
			}
			t.headers, row = csrRow(csr, now)
		case api.KindHorizontalPodAutoscaler:
			h, ok := o.(*api.HorizontalPodAutoscaler)
			if !ok {
				return t, wrongType(kind, o)
			}
			t.headers, row = hpaRow(h, now)
		default:
			return t, fmt.Errorf("no table columns for kind %q", kind)
		}
		t.rows = append(t.rows, row)
	}
	return t, nil
}

func wrongType(kind string, o api.Object) error {
	return fmt.Errorf("object %q is a %T, not a %s", o.GetObjectMeta().Name, o, kind)
}

func writeTable(w io.Writer, t table, headers bool) error {
	tw := tabwriter.NewWriter(w, tableMinWidth, tableTabWidth, tablePadding, ' ', 0)
	if headers {
		fmt.Fprintln(tw, strings.Join(t.headers, "\t"))
	}
	for _, r := range t.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// podRow is kubectl get pods' row, with the pod's node (Flotilla shows it
// without -o wide too). With -o wide the columns are kubectl's (IP, NODE,
// NOMINATED NODE, READINESS GATES: Flotilla has neither of the last two)
// and Flotilla's REVISION, the node snapshot the agent last ran.
func podRow(p *api.Pod, wide bool, now time.Time) ([]string, []string) {
	s := summarizePod(p)
	headers := []string{"NAME", "READY", "STATUS", "RESTARTS", "AGE"}
	row := []string{
		p.Name,
		fmt.Sprintf("%d/%d", s.ready, s.total),
		s.status,
		s.restartsColumn(now),
		age(now, p.CreationTimestamp),
	}
	if !wide {
		return append(headers, "NODE"), append(row, orNone(p.Spec.NodeName))
	}
	headers = append(headers, "IP", "NODE", "NOMINATED NODE", "READINESS GATES", "REVISION")
	row = append(row, orNone(podIP(p)), orNone(p.Spec.NodeName), none, none, revision(p.Status.ObservedRevision))
	return headers, row
}

func nodeRow(n *api.Node, wide bool, now time.Time) ([]string, []string) {
	info := n.Status.NodeInfo
	headers := []string{"NAME", "STATUS", "ROLES", "AGE", "VERSION", "ARCH"}
	row := []string{
		n.Name,
		nodeStatus(n),
		orNone(strings.Join(nodeRoles(n.Labels), ",")),
		age(now, n.CreationTimestamp),
		orUnknown(info.AgentVersion),
		orUnknown(arch(info)),
	}
	if wide {
		headers = append(headers, "INTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME",
			"DESIRED-REV", "OBSERVED-REV", "LAST-SEEN")
		lastSeen := "<never>"
		if !n.Status.LastSeen.IsZero() {
			lastSeen = age(now, n.Status.LastSeen)
		}
		row = append(row,
			orNone(nodeAddress(n, "InternalIP")),
			orUnknown(info.OSImage),
			orUnknown(info.KernelVersion),
			orUnknown(info.ContainerRuntimeVersion),
			revision(n.Status.DesiredRevision),
			revision(n.Status.ObservedRevision),
			lastSeen,
		)
	}
	return headers, row
}

func daemonSetRow(ds *api.DaemonSet, wide bool, now time.Time) ([]string, []string) {
	st := ds.Status
	headers := []string{"NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"}
	row := []string{
		ds.Name,
		itoa(st.DesiredNumberScheduled),
		itoa(st.CurrentNumberScheduled),
		itoa(st.NumberReady),
		itoa(st.UpdatedNumberScheduled),
		itoa(st.NumberAvailable),
		formatLabels(ds.Spec.Template.Spec.NodeSelector),
		age(now, ds.CreationTimestamp),
	}
	if wide {
		var names, images []string
		for _, c := range ds.Spec.Template.Spec.Containers {
			names = append(names, c.Name)
			images = append(images, c.Image)
		}
		headers = append(headers, "CONTAINERS", "IMAGES", "SELECTOR")
		row = append(row, strings.Join(names, ","), strings.Join(images, ","), formatSelector(ds.Spec.Selector))
	}
	return headers, row
}

func deploymentRow(d *api.Deployment, wide bool, now time.Time) ([]string, []string) {
	st := d.Status
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	headers := []string{"NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"}
	row := []string{
		d.Name,
		fmt.Sprintf("%d/%d", st.ReadyReplicas, replicas),
		itoa(st.UpdatedReplicas),
		itoa(st.AvailableReplicas),
		age(now, d.CreationTimestamp),
	}
	if wide {
		var names, images []string
		for _, c := range d.Spec.Template.Spec.Containers {
			names = append(names, c.Name)
			images = append(images, c.Image)
		}
		headers = append(headers, "CONTAINERS", "IMAGES", "SELECTOR")
		row = append(row, strings.Join(names, ","), strings.Join(images, ","), formatSelector(d.Spec.Selector))
	}
	return headers, row
}

func controllerRevisionRow(cr *api.ControllerRevision, now time.Time) ([]string, []string) {
	return []string{"NAME", "CONTROLLER", "REVISION", "AGE"},
		[]string{cr.Name, controllerName(cr.ControllerRef()), strconv.FormatInt(cr.Revision, 10), age(now, cr.CreationTimestamp)}
}

// controllerName is kubectl's "daemonset.apps/sensor", or <none>.
func controllerName(ref *api.OwnerReference) string {
	if ref == nil {
		return none
	}
	kind := strings.ToLower(ref.Kind)
	if group, _, ok := strings.Cut(ref.APIVersion, "/"); ok {
		kind += "." + group
	}
	return kind + "/" + ref.Name
}

func namespaceRow(ns *api.Namespace, now time.Time) ([]string, []string) {
	return []string{"NAME", "STATUS", "AGE"},
		[]string{ns.Name, ns.Status.Phase, age(now, ns.CreationTimestamp)}
}

// secretRow never shows a value: only how many keys there are.
func secretRow(s *api.Secret, now time.Time) ([]string, []string) {
	typ := s.Type
	if typ == "" {
		typ = api.SecretTypeOpaque
	}
	return []string{"NAME", "TYPE", "DATA", "AGE"},
		[]string{s.Name, typ, strconv.Itoa(len(s.Data)), age(now, s.CreationTimestamp)}
}

func configMapRow(cm *api.ConfigMap, now time.Time) ([]string, []string) {
	return []string{"NAME", "DATA", "AGE"},
		[]string{cm.Name, strconv.Itoa(len(cm.Data) + len(cm.BinaryData)), age(now, cm.CreationTimestamp)}
}

// csrRow is kubectl's: the condition is Pending until approved or denied,
// then Approved,Issued once the certificate is there.
func csrRow(c *api.CertificateSigningRequest, now time.Time) ([]string, []string) {
	return []string{"NAME", "AGE", "SIGNERNAME", "REQUESTOR", "NODE", "CONDITION"},
		[]string{c.Name, age(now, c.CreationTimestamp), c.Spec.SignerName, c.Spec.Username, c.Spec.NodeName, csrCondition(c)}
}

// nodeStatus is kubectl's node STATUS: Ready, NotReady (the Ready condition
// is False or Unknown) or Unknown (no Ready condition), then
// ",MemoryPressure" and ",DiskPressure" when those conditions are True,
// and ",SchedulingDisabled" when cordoned.
func nodeStatus(n *api.Node) string {
	status := "Unknown"
	if c := n.Status.Condition(api.NodeReady); c != nil {
		status = "NotReady"
		if c.Status == api.ConditionTrue {
			status = "Ready"
		}
	}
	for _, p := range []string{api.NodeMemoryPressure, api.NodeDiskPressure} {
		if c := n.Status.Condition(p); c != nil && c.Status == api.ConditionTrue {
			status += "," + p
		}
	}
	if n.Spec.Unschedulable {
		status += ",SchedulingDisabled"
	}
	return status
}

// Role labels, as kubectl reads them.
const (
	labelNodeRolePrefix = "node-role.kubernetes.io/"
	labelNodeRole       = "kubernetes.io/role"
)

// nodeRoles returns the sorted roles named by node-role.kubernetes.io/<role>
// labels and the older kubernetes.io/role=<role> label.
func nodeRoles(labels map[string]string) []string {
	set := map[string]bool{}
	for k, v := range labels {
		switch {
		case strings.HasPrefix(k, labelNodeRolePrefix):
			if role := strings.TrimPrefix(k, labelNodeRolePrefix); role != "" {
				set[role] = true
			}
		case k == labelNodeRole && v != "":
			set[v] = true
		}
	}
	roles := make([]string, 0, len(set))
	for r := range set {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	return roles
}

// arch is the node's architecture with its variant: arm64, arm/v7.
func arch(info api.NodeSystemInfo) string {
	if info.Variant == "" || info.Architecture == "" {
		return info.Architecture
	}
	return info.Architecture + "/" + info.Variant
}

// nodeAddress returns the node's first address of type t.
func nodeAddress(n *api.Node, t string) string {
	for _, a := range n.Status.Addresses {
		if a.Type == t {
			return a.Address
		}
	}
	return ""
}

// formatLabels is kubectl's labels.FormatLabels: sorted k=v pairs joined by
// commas, or <none>.
func formatLabels(m map[string]string) string {
	if len(m) == 0 {
		return none
	}
	pairs := make([]string, 0, len(m))
	for k, v := range m {
		pairs = append(pairs, k+"="+v)
	}
	sort.Strings(pairs)
	return strings.Join(pairs, ",")
}

// formatSelector is kubectl's metav1.FormatLabelSelector: the selector in
// -l syntax, <none> when it is nil or empty, the error when invalid.
func formatSelector(ls *api.LabelSelector) string {
	if ls == nil {
		return none
	}
	sel, err := ls.AsSelector()
	if err != nil {
		return err.Error()
	}
	return orNone(sel.String())
}

func revision(r uint64) string {
	if r == 0 {
		return none
	}
	return strconv.FormatUint(r, 10)
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return unknown
	}
	return s
}
