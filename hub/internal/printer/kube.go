package printer

// The columns a Kubernetes API server puts in the Table kubectl gets
// (`kubectl get` asks for one and prints it as it comes): the same
// columns, in the same order, with the same priorities (1 is shown by -o
// wide only) and the same cells as Kubernetes' own printers, so that
// kubectl prints Flotilla's objects as it prints Kubernetes'. The hub's
// own `hub get` tables (table.go) add Flotilla's columns; these do not.

import (
	"fmt"
	"strings"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// KubeColumn is one column of a Table.
type KubeColumn struct {
	Name        string
	Type        string // string, integer, date...
	Format      string // "name" for the object's name column
	Description string
	Priority    int32
}

const (
	descName = "The object's name, unique among the objects of its kind (in its namespace)."
	descAge  = "How long ago the object was created (metadata.creationTimestamp)."
)

var (
	colName = KubeColumn{Name: "Name", Type: "string", Format: "name", Description: descName}
	colAge  = KubeColumn{Name: "Age", Type: "string", Description: descAge}
)

// wideColumn is a column kubectl shows with -o wide only.
func wideColumn(name, typ, desc string) KubeColumn {
	return KubeColumn{Name: name, Type: typ, Description: desc, Priority: 1}
}

func column(name, typ, desc string) KubeColumn {
	return KubeColumn{Name: name, Type: typ, Description: desc}
}

var (
	templateColumns = []KubeColumn{
		wideColumn("Containers", "string", "The names of the template's containers."),
		wideColumn("Images", "string", "The images of the template's containers."),
		wideColumn("Selector", "string", "The label selector of the pods it manages."),
	}

	kubeColumns = map[string][]KubeColumn{
		api.KindPod: {
			colName,
			column("Ready", "string", "Ready containers of all the pod's containers."),
			column("Status", "string", "The pod's phase, or why its containers are not running."),
			column("Restarts", "string", "How often the pod's containers restarted, and how long ago the last did."),
			colAge,
			wideColumn("IP", "string", "The pod's address (status.podIPs)."),
			wideColumn("Node", "string", "The node the pod runs on (spec.nodeName)."),
			wideColumn("Nominated Node", "string", "The node a preemption nominated (never set on Flotilla)."),
			wideColumn("Readiness Gates", "string", "True readiness gates of all the pod's gates (none on Flotilla)."),
		},
		api.KindNode: {
			colName,
			column("Status", "string", "Ready, NotReady or Unknown, and SchedulingDisabled when cordoned."),
			column("Roles", "string", "The roles named by the node's node-role.kubernetes.io/ labels."),
			colAge,
			column("Version", "string", "The version of the node's edge agent."),
			wideColumn("Internal-IP", "string", "The node's InternalIP address."),
			wideColumn("External-IP", "string", "The node's ExternalIP address."),
			wideColumn("OS-Image", "string", "The operating system the node's agent reported."),
			wideColumn("Kernel-Version", "string", "The kernel version the node's agent reported."),
			wideColumn("Container-Runtime", "string", "The container runtime the node's agent drives."),
		},
		api.KindDaemonSet: append([]KubeColumn{
			colName,
			column("Desired", "integer", "Nodes that should run the daemon pod."),
			column("Current", "integer", "Nodes that run at least one daemon pod and should."),
			column("Ready", "integer", "Nodes whose daemon pod is ready."),
			column("Up-to-date", "integer", "Nodes that run the current pod template."),
			column("Available", "integer", "Nodes whose daemon pod has been ready for minReadySeconds."),
			column("Node Selector", "string", "The pod template's node selector."),
			colAge,
		}, templateColumns...),
		api.KindDeployment: append([]KubeColumn{
			colName,
			column("Ready", "string", "Ready pods of the desired replicas."),
			column("Up-to-date", "integer", "Pods that run the current pod template."),
			column("Available", "integer", "Pods that have been ready for minReadySeconds."),
			colAge,
		}, templateColumns...),
		api.KindService: {
			colName,
			column("Type", "string", "ClusterIP or NodePort."),
			column("Cluster-IP", "string", "The Service's cluster address, or None for a headless Service."),
			column("External-IP", "string", "External addresses (none on Flotilla)."),
			column("Port(s)", "string", "The Service's ports: port[:nodePort]/protocol."),
			colAge,
			wideColumn("Selector", "string", "The labels of the pods the Service sends traffic to."),
		},
		api.KindEndpoints: {
			colName,
			column("Endpoints", "string", "The ready addresses and ports of the Service's pods."),
			colAge,
		},
		api.KindEvent: {
			column("Last Seen", "string", "How long ago the event last happened."),
			column("Type", "string", "Normal or Warning."),
			column("Reason", "string", "Why the event happened, in one word."),
			column("Object", "string", "The object the event is about."),
			wideColumn("Subobject", "string", "The part of the object (involvedObject.fieldPath)."),
			wideColumn("Source", "string", "The component (and host) that reported the event."),
			column("Message", "string", "What happened."),
			wideColumn("First Seen", "string", "How long ago the event first happened."),
			wideColumn("Count", "string", "How often the event happened."),
			{Name: "Name", Type: "string", Format: "name", Description: descName, Priority: 1},
		},
		api.KindNamespace: {
			colName,
			column("Status", "string", "Active, or Terminating."),
			colAge,
		},
		api.KindSecret: {
			colName,
			column("Type", "string", "The Secret's type."),
			column("Data", "string", "How many keys the Secret holds (never their values)."),
			colAge,
		},
		api.KindConfigMap: {
			colName,
			column("Data", "string", "How many keys the ConfigMap holds."),
			colAge,
		},
		api.KindControllerRevision: {
			colName,
			column("Controller", "string", "The DaemonSet or Deployment the revision belongs to."),
			column("Revision", "integer", "The revision's number."),
			colAge,
		},
		api.KindCertificateSigningRequest: {
			colName,
			colAge,
			column("SignerName", "string", "The signer the request is for."),
			column("Requestor", "string", "Who made the request."),
			column("RequestedDuration", "string", "The certificate lifetime the request asked for."),
			column("Condition", "string", "Pending, Approved, Denied, and Issued once signed."),
		},
	}

	// defaultColumns are a Kubernetes API server's for a kind it has no
	// printer for (a custom resource without printer columns).
	defaultColumns = []KubeColumn{
		colName,
		{Name: "Created At", Type: "date", Description: "When the object was created (metadata.creationTimestamp)."},
	}
)

// KubeColumns returns the Table columns of kind: Kubernetes' own for
// the kinds it has, its default (Name, Created At) for any other.
func KubeColumns(kind string) []KubeColumn {
	if cols, ok := kubeColumns[kind]; ok {
		return cols
	}
	return defaultColumns
}

// KubeCells returns obj's Table cells, one per column of KubeColumns of
// its kind, measuring ages from now.
func KubeCells(obj api.Object, now time.Time) []any {
	meta := obj.GetObjectMeta()
	switch o := obj.(type) {
	case *api.Pod:
		return podCells(o, now)
	case *api.Node:
		return nodeCells(o, now)
	case *api.DaemonSet:
		st := o.Status
		names, images := containerCells(o.Spec.Template.Spec.Containers)
		return []any{o.Name, int64(st.DesiredNumberScheduled), int64(st.CurrentNumberScheduled), int64(st.NumberReady),
			int64(st.UpdatedNumberScheduled), int64(st.NumberAvailable), formatLabels(o.Spec.Template.Spec.NodeSelector),
			age(now, o.CreationTimestamp), names, images, formatSelector(o.Spec.Selector)}
	case *api.Deployment:
		st := o.Status
		replicas := int32(1)
		if o.Spec.Replicas != nil {
			replicas = *o.Spec.Replicas
		}
		names, images := containerCells(o.Spec.Template.Spec.Containers)
		return []any{o.Name, fmt.Sprintf("%d/%d", st.ReadyReplicas, replicas), int64(st.UpdatedReplicas), int64(st.AvailableReplicas),
			age(now, o.CreationTimestamp), names, images, selectorString(o.Spec.Selector)}
	case *api.Service:
		clusterIP := none
		if len(o.Spec.ClusterIPs) > 0 {
			clusterIP = o.Spec.ClusterIPs[0]
		}
		return []any{o.Name, string(o.Spec.Type), clusterIP, none, orNone(servicePorts(o.Spec.Ports)), age(now, o.CreationTimestamp),
			formatLabels(o.Spec.Selector)}
	case *api.Endpoints:
		return []any{o.Name, formatEndpoints(o, nil), age(now, o.CreationTimestamp)}
	case *api.Event:
		return eventCells(o, now)
	case *api.Namespace:
		return []any{o.Name, o.Status.Phase, age(now, o.CreationTimestamp)}
	case *api.Secret:
		typ := o.Type
		if typ == "" {
			typ = api.SecretTypeOpaque
		}
		return []any{o.Name, typ, int64(len(o.Data)), age(now, o.CreationTimestamp)}
	case *api.ConfigMap:
		return []any{o.Name, int64(len(o.Data) + len(o.BinaryData)), age(now, o.CreationTimestamp)}
	case *api.ControllerRevision:
		return []any{o.Name, controllerName(o.ControllerRef()), o.Revision, age(now, o.CreationTimestamp)}
	case *api.CertificateSigningRequest:
		signer := orNone(o.Spec.SignerName)
		return []any{o.Name, age(now, o.CreationTimestamp), signer, o.Spec.Username, none, csrCondition(o)}
	}
	created := ""
	if !meta.CreationTimestamp.IsZero() {
		created = meta.CreationTimestamp.UTC().Format(time.RFC3339)
	}
	return []any{meta.Name, created}
}

// podCells are Kubernetes' pod row (Flotilla's pods have no init
// containers, readiness gates or nominated nodes).
func podCells(p *api.Pod, now time.Time) []any {
	s := summarizePod(p)
	return []any{p.Name, fmt.Sprintf("%d/%d", s.ready, s.total), s.status, s.restartsColumn(now), age(now, p.CreationTimestamp),
		orNone(podIP(p)), orNone(p.Spec.NodeName), none, none}
}

// nodeCells are Kubernetes' node row: its STATUS has the Ready condition
// only (hub get nodes adds the pressure conditions), VERSION is the
// agent's.
func nodeCells(n *api.Node, now time.Time) []any {
	status := "Unknown"
	if c := n.Status.Condition(api.NodeReady); c != nil {
		status = "NotReady"
		if c.Status == api.ConditionTrue {
			status = "Ready"
		}
	}
	if n.Spec.Unschedulable {
		status += ",SchedulingDisabled"
	}
	info := n.Status.NodeInfo
	return []any{n.Name, status, orNone(strings.Join(nodeRoles(n.Labels), ",")), age(now, n.CreationTimestamp), info.AgentVersion,
		orNone(nodeAddress(n, "InternalIP")), orNone(nodeAddress(n, "ExternalIP")),
		orUnknown(info.OSImage), orUnknown(info.KernelVersion), orUnknown(info.ContainerRuntimeVersion)}
}

// eventCells are Kubernetes' event row: LAST SEEN falls back to the first
// time, a count of 0 is 1.
func eventCells(e *api.Event, now time.Time) []any {
	first := age(now, e.FirstTimestamp)
	if e.FirstTimestamp.IsZero() {
		first = age(now, e.CreationTimestamp)
	}
	last := age(now, e.LastTimestamp)
	if e.LastTimestamp.IsZero() {
		last = first
	}
	count := e.Count
	if count == 0 {
		count = 1
	}
	target := strings.ToLower(e.InvolvedObject.Kind)
	if e.InvolvedObject.Name != "" {
		target += "/" + e.InvolvedObject.Name
	}
	source := e.Source.Component
	if e.Source.Host != "" {
		source += ", " + e.Source.Host
	}
	return []any{last, string(e.Type), e.Reason, target, e.InvolvedObject.FieldPath, source, strings.TrimSpace(e.Message),
		first, int64(count), e.Name}
}

// containerCells are the comma-joined names and images of containers.
func containerCells(cs []api.Container) (names, images string) {
	n, i := make([]string, len(cs)), make([]string, len(cs))
	for k, c := range cs {
		n[k], i[k] = c.Name, c.Image
	}
	return strings.Join(n, ","), strings.Join(i, ",")
}

// selectorString is a Deployment's SELECTOR cell: the selector, "" when
// empty, <invalid> when it does not parse.
func selectorString(ls *api.LabelSelector) string {
	if ls == nil {
		return ""
	}
	sel, err := ls.AsSelector()
	if err != nil {
		return "<invalid>"
	}
	return sel.String()
}

// csrCondition is kubectl's CONDITION: the true conditions and Issued, or
// Pending.
func csrCondition(c *api.CertificateSigningRequest) string {
	var conds []string
	for _, cd := range c.Status.Conditions {
		if cd.Status == api.ConditionTrue || cd.Status == "" {
			conds = append(conds, cd.Type)
		}
	}
	if len(c.Status.Certificate) > 0 {
		conds = append(conds, "Issued")
	}
	if len(conds) == 0 {
		return "Pending"
	}
	return strings.Join(conds, ",")
}
