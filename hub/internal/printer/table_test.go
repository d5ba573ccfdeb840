package printer

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// text trims the leading newline of a raw string literal.
func text(s string) string { return strings.TrimPrefix(s, "\n") }

func TestPrintTable(t *testing.T) {
	pods, nodes := objects(testPods()), objects(testNodes())
	dss, nss := objects(testDaemonSets()), objects(testNamespaces())
	tests := []struct {
		name string
		kind string
		objs []api.Object
		opts Options
		want string
	}{
		{"pods", api.KindPod, pods, Options{}, `
NAME            READY   STATUS             RESTARTS     AGE     NODE
web-edge-1      1/1     Running            0            3h20m   edge-1
sensor-edge-2   0/1     CrashLoopBackOff   5 (4m ago)   2d1h    edge-2
agent-x         0/1     ImagePullBackOff   0            45s     edge-3
`},
		{"pods wide", api.KindPod, pods, Options{Wide: true}, `
NAME            READY   STATUS             RESTARTS     AGE     IP          NODE     NOMINATED NODE   READINESS GATES   REVISION
web-edge-1      1/1     Running            0            3h20m   10.42.0.5   edge-1   <none>           <none>            7
sensor-edge-2   0/1     CrashLoopBackOff   5 (4m ago)   2d1h    10.0.0.12   edge-2   <none>           <none>            12
agent-x         0/1     ImagePullBackOff   0            45s     <none>      edge-3   <none>           <none>            <none>
`},
		{"pods all namespaces", api.KindPod, pods, Options{AllNamespaces: true}, `
NAMESPACE     NAME            READY   STATUS             RESTARTS     AGE     NODE
default       web-edge-1      1/1     Running            0            3h20m   edge-1
default       sensor-edge-2   0/1     CrashLoopBackOff   5 (4m ago)   2d1h    edge-2
kube-system   agent-x         0/1     ImagePullBackOff   0            45s     edge-3
`},
		{"pods show labels", api.KindPod, pods, Options{ShowLabels: true}, `
NAME            READY   STATUS             RESTARTS     AGE     NODE     LABELS
web-edge-1      1/1     Running            0            3h20m   edge-1   app=web,tier=front
sensor-edge-2   0/1     CrashLoopBackOff   5 (4m ago)   2d1h    edge-2   app=sensor
agent-x         0/1     ImagePullBackOff   0            45s     edge-3   <none>
`},
		{"pods everything", api.KindPod, pods, Options{Wide: true, AllNamespaces: true, ShowLabels: true, NoHeaders: true}, `
default       web-edge-1      1/1   Running            0            3h20m   10.42.0.5   edge-1   <none>   <none>   7        app=web,tier=front
default       sensor-edge-2   0/1   CrashLoopBackOff   5 (4m ago)   2d1h    10.0.0.12   edge-2   <none>   <none>   12       app=sensor
kube-system   agent-x         0/1   ImagePullBackOff   0            45s     <none>      edge-3   <none>   <none>   <none>   <none>
`},
		{"nodes", api.KindNode, nodes, Options{}, `
NAME     STATUS                        ROLES     AGE   VERSION     ARCH
edge-1   Ready                         gateway   8d    v0.3.1      arm64
edge-2   NotReady,SchedulingDisabled   <none>    2d    v0.3.0      arm/v7
edge-3   Unknown                       <none>    90s   <unknown>   <unknown>
`},
		{"nodes wide", api.KindNode, nodes, Options{Wide: true}, `
NAME     STATUS                        ROLES     AGE   VERSION     ARCH        INTERNAL-IP   OS-IMAGE                         KERNEL-VERSION      CONTAINER-RUNTIME     DESIRED-REV   OBSERVED-REV   LAST-SEEN
edge-1   Ready                         gateway   8d    v0.3.1      arm64       10.0.0.11     Debian GNU/Linux 12 (bookworm)   6.1.0-rpi7-rpi-v8   containerd://1.7.24   7             7              10s
edge-2   NotReady,SchedulingDisabled   <none>    2d    v0.3.0      arm/v7      10.0.0.12     Raspbian 11                      5.15.0              containerd://1.7.24   12            10             7m
edge-3   Unknown                       <none>    90s   <unknown>   <unknown>   <none>        <unknown>                        <unknown>           <unknown>             <none>        <none>         <never>
`},
		{"nodes all namespaces has no NAMESPACE column", api.KindNode, nodes, Options{AllNamespaces: true}, `
NAME     STATUS                        ROLES     AGE   VERSION     ARCH
edge-1   Ready                         gateway   8d    v0.3.1      arm64
edge-2   NotReady,SchedulingDisabled   <none>    2d    v0.3.0      arm/v7
edge-3   Unknown                       <none>    90s   <unknown>   <unknown>
`},
		{"nodes show labels", api.KindNode, nodes, Options{ShowLabels: true}, `
NAME     STATUS                        ROLES     AGE   VERSION     ARCH        LABELS
edge-1   Ready                         gateway   8d    v0.3.1      arm64       kubernetes.io/arch=arm64,kubernetes.io/os=linux,node-role.kubernetes.io/gateway=
edge-2   NotReady,SchedulingDisabled   <none>    2d    v0.3.0      arm/v7      kubernetes.io/arch=arm
edge-3   Unknown                       <none>    90s   <unknown>   <unknown>   <none>
`},
		{"daemonsets", api.KindDaemonSet, dss, Options{}, `
NAME            DESIRED   CURRENT   READY   UP-TO-DATE   AVAILABLE   NODE SELECTOR                         AGE
sensor          3         3         2       1            2           kubernetes.io/arch=arm64,site=north   10d
log-forwarder   12        11        10      11           10          <none>                                5m30s
`},
		{"daemonsets wide", api.KindDaemonSet, dss, Options{Wide: true}, `
NAME            DESIRED   CURRENT   READY   UP-TO-DATE   AVAILABLE   NODE SELECTOR                         AGE     CONTAINERS       IMAGES                                             SELECTOR
sensor          3         3         2       1            2           kubernetes.io/arch=arm64,site=north   10d     sensor,shipper   registry.local/sensor:2,registry.local/shipper:1   app=sensor
log-forwarder   12        11        10      11           10          <none>                                5m30s   fluent-bit       registry.local/fluent-bit:1                        app=logs,track in (stable,canary)
`},
		{"daemonsets all namespaces", api.KindDaemonSet, dss, Options{AllNamespaces: true}, `
NAMESPACE     NAME            DESIRED   CURRENT   READY   UP-TO-DATE   AVAILABLE   NODE SELECTOR                         AGE
default       sensor          3         3         2       1            2           kubernetes.io/arch=arm64,site=north   10d
kube-system   log-forwarder   12        11        10      11           10          <none>                                5m30s
`},
		{"daemonsets show labels", api.KindDaemonSet, dss, Options{ShowLabels: true}, `
NAME            DESIRED   CURRENT   READY   UP-TO-DATE   AVAILABLE   NODE SELECTOR                         AGE     LABELS
sensor          3         3         2       1            2           kubernetes.io/arch=arm64,site=north   10d     app=sensor
log-forwarder   12        11        10      11           10          <none>                                5m30s   <none>
`},
		{"daemonsets no headers", api.KindDaemonSet, dss, Options{NoHeaders: true}, `
sensor          3     3     2     1     2     kubernetes.io/arch=arm64,site=north   10d
log-forwarder   12    11    10    11    10    <none>                                5m30s
`},
		{"namespaces", api.KindNamespace, nss, Options{}, `
NAME          STATUS   AGE
default       Active   400d
sites-north   Active   3m
`},
		{"namespaces wide and all namespaces change nothing", api.KindNamespace, nss, Options{Wide: true, AllNamespaces: true}, `
NAME          STATUS   AGE
default       Active   400d
sites-north   Active   3m
`},
		{"namespaces show labels", api.KindNamespace, nss, Options{ShowLabels: true}, `
NAME          STATUS   AGE    LABELS
default       Active   400d   kubernetes.io/metadata.name=default
sites-north   Active   3m     <none>
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Now = testNow
			var b bytes.Buffer
			if err := PrintTable(&b, tt.kind, tt.objs, tt.opts); err != nil {
				t.Fatalf("PrintTable: %v", err)
			}
			if got, want := b.String(), text(tt.want); got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestPrintTableEmpty(t *testing.T) {
	var b bytes.Buffer
	err := PrintTable(&b, api.KindPod, nil, Options{Now: testNow})
	if !errors.Is(err, ErrNoResources) {
		t.Fatalf("err = %v, want ErrNoResources", err)
	}
	if b.Len() != 0 {
		t.Errorf("wrote %q for an empty list", b.String())
	}
}

func TestPrintTableErrors(t *testing.T) {
	var b bytes.Buffer
	if err := PrintTable(&b, "Deployment", objects(testPods()), Options{}); err == nil {
		t.Error("unsupported kind: no error")
	}
	if err := PrintTable(&b, api.KindNode, objects(testPods()), Options{}); err == nil {
		t.Error("pods printed as nodes: no error")
	}
	if b.Len() != 0 {
		t.Errorf("wrote %q on error", b.String())
	}
}

func TestNoResourcesMessage(t *testing.T) {
	for _, tt := range []struct {
		ns   string
		all  bool
		want string
	}{
		{"default", false, "No resources found in default namespace."},
		{"kube-system", false, "No resources found in kube-system namespace."},
		{"default", true, "No resources found"},
		{"", false, "No resources found"},
	} {
		if got := NoResourcesMessage(tt.ns, tt.all); got != tt.want {
			t.Errorf("NoResourcesMessage(%q, %v) = %q, want %q", tt.ns, tt.all, got, tt.want)
		}
	}
}

func TestColumnsSeparatedByThreeSpaces(t *testing.T) {
	// A column is as wide as its widest cell plus 3 spaces of padding, so a
	// header starts exactly 3 columns after the longest value before it.
	var b bytes.Buffer
	if err := PrintTable(&b, api.KindNamespace, objects(testNamespaces()), Options{Now: testNow}); err != nil {
		t.Fatal(err)
	}
	header := strings.SplitN(b.String(), "\n", 2)[0]
	if got, want := strings.Index(header, "STATUS"), len("sites-north")+3; got != want {
		t.Errorf("STATUS at column %d, want %d in %q", got, want, header)
	}
}

func TestNodeStatusAndRoles(t *testing.T) {
	for _, tt := range []struct {
		name       string
		conditions []api.NodeCondition
		cordoned   bool
		labels     map[string]string
		status     string
		roles      string
	}{
		{"ready", []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue}}, false, nil, "Ready", "<none>"},
		{"not ready", []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionFalse}}, false, nil, "NotReady", "<none>"},
		{"ready unknown shows NotReady as in kubectl", []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionUnknown}}, false, nil, "NotReady", "<none>"},
		{"no ready condition", []api.NodeCondition{{Type: "MemoryPressure", Status: api.ConditionFalse}}, false, nil, "Unknown", "<none>"},
		{"cordoned", []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue}}, true, nil, "Ready,SchedulingDisabled", "<none>"},
		{"cordoned unknown", nil, true, nil, "Unknown,SchedulingDisabled", "<none>"},
		{"roles sorted", nil, false, map[string]string{
			"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/gateway": "true", "node-role.kubernetes.io/": "x",
		}, "Unknown", "gateway,worker"},
		{"legacy role label", nil, false, map[string]string{"kubernetes.io/role": "camera"}, "Unknown", "camera"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := &api.Node{ObjectMeta: api.ObjectMeta{Labels: tt.labels}, Spec: api.NodeSpec{Unschedulable: tt.cordoned},
				Status: api.NodeStatus{Conditions: tt.conditions}}
			if got := nodeStatus(n); got != tt.status {
				t.Errorf("status = %q, want %q", got, tt.status)
			}
			if got := orNone(strings.Join(nodeRoles(n.Labels), ",")); got != tt.roles {
				t.Errorf("roles = %q, want %q", got, tt.roles)
			}
		})
	}
}

func TestFormatSelector(t *testing.T) {
	for _, tt := range []struct {
		sel  *api.LabelSelector
		want string
	}{
		{nil, "<none>"},
		{&api.LabelSelector{}, "<none>"},
		{&api.LabelSelector{MatchLabels: map[string]string{"b": "2", "a": "1"}}, "a=1,b=2"},
		{&api.LabelSelector{MatchExpressions: []api.LabelSelectorRequirement{
			{Key: "env", Operator: api.OpNotIn, Values: []string{"dev"}},
			{Key: "gpu", Operator: api.OpExists},
			{Key: "legacy", Operator: api.OpDoesNotExist},
		}}, "env notin (dev),gpu,!legacy"},
	} {
		if got := formatSelector(tt.sel); got != tt.want {
			t.Errorf("formatSelector(%+v) = %q, want %q", tt.sel, got, tt.want)
		}
	}
}

func TestAgeOfUnsetTimestamp(t *testing.T) {
	if got := age(testNow, api.Time{}); got != "<unknown>" {
		t.Errorf("age of zero time = %q, want <unknown>", got)
	}
	if got := age(testNow, ago(-10*time.Second)); got != "<invalid>" {
		t.Errorf("age of a time 10s ahead = %q, want <invalid>", got)
	}
}
