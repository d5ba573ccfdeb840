package manifest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// decodeDocument turns one parsed document into objects: one, or the items
// of a List. Problems go to c.
func decodeDocument(c *collector, v any) []Document {
	m, ok := v.(map[string]any)
	if !ok {
		c.addf("", "a document must be an object with apiVersion and kind, not %s", describe(v))
		return nil
	}
	if kind, _ := m["kind"].(string); kind == "List" {
		return decodeList(c, m)
	}
	obj := decodeObject(c, m, "")
	if obj == nil {
		return nil
	}
	return []Document{{Source: c.source, Index: c.doc, Object: obj}}
}

// listMeta is the metadata kubectl prints on a List.
type listMeta struct {
	ResourceVersion    string `json:"resourceVersion,omitempty"`
	Continue           string `json:"continue,omitempty"`
	SelfLink           string `json:"selfLink,omitempty"`
	RemainingItemCount *int64 `json:"remainingItemCount,omitempty"`
}

// decodeList expands a "kind: List" document, as `kubectl get -o yaml`
// prints for several objects.
func decodeList(c *collector, m map[string]any) []Document {
	if av, _ := m["apiVersion"].(string); av != "v1" {
		c.addf("apiVersion", "must be %q for kind List", "v1")
	}
	var items []any
	for _, k := range sortedKeys(m) {
		v := m[k]
		switch k {
		case "apiVersion", "kind":
		case "metadata":
			walkValue(c, v, reflect.TypeOf(listMeta{}), "metadata")
		case "items":
			if v == nil {
				continue
			}
			list, ok := v.([]any)
			if !ok {
				c.add("items", "must be a list")
				continue
			}
			items = list
		default:
			c.add(key("", k), "unknown field")
		}
	}
	var docs []Document
	for i, item := range items {
		path := index("items", i)
		im, ok := item.(map[string]any)
		if !ok {
			c.addf(path, "must be an object with apiVersion and kind, not %s", describe(item))
			continue
		}
		if kind, _ := im["kind"].(string); kind == "List" {
			c.add(field(path, "kind"), "a List may not contain another List")
			continue
		}
		if obj := decodeObject(c, im, path); obj != nil {
			docs = append(docs, Document{Source: c.source, Index: c.doc, Path: path, Object: obj})
		}
	}
	return docs
}

// decodeObject checks m field by field against the Go type of its kind and
// decodes it into a new object. What the check reports (unknown and
// unsupported fields, values of the wrong type) is left out of the object,
// so that Load can still validate the rest; Decode drops the object.
func decodeObject(c *collector, m map[string]any, path string) api.Object {
	info, ok := lookupKind(c, m, path)
	if !ok {
		return nil
	}
	obj := info.NewObject()
	walkValue(c, m, reflect.TypeOf(obj).Elem(), path)
	b, err := json.Marshal(m)
	if err != nil {
		c.addf(path, "cannot re-encode document: %v", err)
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		// The walk above should have caught anything encoding/json rejects.
		c.addf(path, "cannot decode: %v", err)
		return nil
	}
	return obj
}

// lookupKind checks apiVersion and kind and finds the kind's description.
func lookupKind(c *collector, m map[string]any, path string) (api.KindInfo, bool) {
	kindPath, versionPath := field(path, "kind"), field(path, "apiVersion")
	kind, kindOK := m["kind"].(string)
	version, versionOK := m["apiVersion"].(string)
	switch {
	case m["kind"] == nil:
		c.add(kindPath, "required")
	case !kindOK:
		c.add(kindPath, "must be a string")
	case kind == "":
		c.add(kindPath, "required")
	}
	switch {
	case m["apiVersion"] == nil:
		c.add(versionPath, "required")
	case !versionOK:
		c.add(versionPath, "must be a string")
	case version == "":
		c.add(versionPath, "required")
	}
	if !kindOK || kind == "" {
		return api.KindInfo{}, false
	}
	info, ok := api.LookupKind(kind)
	if !ok {
		if kubernetesKinds[kind] {
			c.addf(kindPath, "%s is not supported by Flotilla (kinds that apply accepts: %s)", kind, appliedKinds())
		} else {
			c.addf(kindPath, "unknown kind %q (kinds that apply accepts: %s)", clip(kind, 64), appliedKinds())
		}
		return api.KindInfo{}, false
	}
	if c.apply && !info.Writable {
		c.addf(kindPath, "%s cannot be applied: %s", kind, notApplied(info))
		return api.KindInfo{}, false
	}
	if versionOK && version != "" && version != info.APIVersion {
		c.addf(versionPath, "must be %q for kind %s, not %q", info.APIVersion, kind, clip(version, 64))
		return api.KindInfo{}, false
	}
	if !versionOK || version == "" {
		return api.KindInfo{}, false
	}
	return info, true
}

// appliedKinds lists the kinds that apply accepts, for messages: the other
// kinds Flotilla has (Pods, Events...) only the hub and the agents write.
func appliedKinds() string {
	var names []string
	for _, k := range api.Kinds() {
		if k.Writable {
			names = append(names, k.Kind)
		}
	}
	return strings.Join(names, ", ")
}

// notApplied says why a kind that only the hub and the agents write cannot
// be applied.
func notApplied(k api.KindInfo) string {
	switch k.Kind {
	case api.KindPod:
		return "the hub makes pods for DaemonSets and Deployments; apply one of those"
	case api.KindControllerRevision:
		return "the hub records the revisions of DaemonSets and Deployments itself"
	case api.KindEvent:
		return "events are recorded by the hub and the agents"
	case api.KindCertificateSigningRequest:
		return "nodes request certificates when they enrol; approve or deny them with hub certificate"
	case api.KindEndpoints:
		return "the hub keeps each Service's endpoints from the ready pods its selector matches"
	}
	return k.Resource + " are written only by the hub and the agents"
}

// kubernetesKinds are kinds a Kubernetes user may well write that Flotilla
// does not have; they get a clearer message than a typo does.
var kubernetesKinds = map[string]bool{
	"StatefulSet": true, "ReplicaSet": true, "ReplicationController": true,
	"Job": true, "CronJob": true, "EndpointSlice": true, "NetworkPolicy": true,
	"PersistentVolume": true, "PersistentVolumeClaim": true, "StorageClass": true,
	"ServiceAccount": true, "Role": true, "RoleBinding": true, "ClusterRole": true,
	"ClusterRoleBinding": true, "PodDisruptionBudget": true,
	"LimitRange": true, "ResourceQuota": true, "PriorityClass": true, "CustomResourceDefinition": true,
	"PodTemplate": true, "Lease": true,
}

// unsupported lists, per API type, the Kubernetes fields of that type that
// Flotilla does not implement. Writing one is an error that says so, rather
// than a bare "unknown field".
var unsupported = map[reflect.Type][]string{
	reflect.TypeOf(api.ObjectMeta{}): {
		"generateName", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds",
		"finalizers", "managedFields",
	},
	reflect.TypeOf(api.OwnerReference{}): {"blockOwnerDeletion"},
	reflect.TypeOf(api.Namespace{}):      {"spec"},
	reflect.TypeOf(api.NodeSpec{}): {
		"taints", "providerID", "configSource", "externalID",
	},
	reflect.TypeOf(api.DaemonSetStatus{}):  {"conditions"},
	reflect.TypeOf(api.DeploymentStatus{}): {"terminatingReplicas"},
	reflect.TypeOf(api.PodSpec{}): {
		"affinity", "initContainers", "ephemeralContainers",
		"serviceAccountName", "serviceAccount", "automountServiceAccountToken",
		"imagePullSecrets", "hostPID", "hostIPC", "hostUsers",
		"hostAliases", "priorityClassName", "priority", "preemptionPolicy",
		"schedulerName", "activeDeadlineSeconds", "shareProcessNamespace", "readinessGates",
		"runtimeClassName", "enableServiceLinks", "overhead", "topologySpreadConstraints",
		"setHostnameAsFQDN", "os", "schedulingGates", "resourceClaims", "resources",
	},
	reflect.TypeOf(api.Container{}): {
		"lifecycle",
		"stdin", "stdinOnce", "tty", "terminationMessagePath",
		"terminationMessagePolicy", "volumeDevices", "resizePolicy", "restartPolicy",
	},
	reflect.TypeOf(api.PodSecurityContext{}): {
		"seLinuxOptions", "windowsOptions", "fsGroupChangePolicy", "sysctls",
		"appArmorProfile", "supplementalGroupsPolicy", "seLinuxChangePolicy",
	},
	reflect.TypeOf(api.SecurityContext{}): {"seLinuxOptions", "windowsOptions", "appArmorProfile"},
	// A probe's handler fields are promoted from the inlined ProbeHandler,
	// so they are checked against Probe.
	reflect.TypeOf(api.Probe{}): {"grpc", "terminationGracePeriodSeconds"},
	reflect.TypeOf(api.Event{}): {
		"eventTime", "series", "action", "related", "reportingComponent", "reportingInstance",
	},
	reflect.TypeOf(api.ObjectReference{}):      {"apiVersion", "resourceVersion"},
	reflect.TypeOf(api.EnvVarSource{}):         {"fieldRef", "resourceFieldRef", "fileKeyRef"},
	reflect.TypeOf(api.Secret{}):               {"immutable"},
	reflect.TypeOf(api.ConfigMap{}):            {"immutable"},
	reflect.TypeOf(api.ContainerPort{}):        {"hostIP"},
	reflect.TypeOf(api.ResourceRequirements{}): {"claims"},
	reflect.TypeOf(api.VolumeMount{}):          {"subPath", "subPathExpr", "mountPropagation", "recursiveReadOnly"},
	reflect.TypeOf(api.ServiceSpec{}): {
		"externalIPs", "externalName", "loadBalancerIP", "loadBalancerSourceRanges", "loadBalancerClass",
		"healthCheckNodePort", "allocateLoadBalancerNodePorts", "publishNotReadyAddresses",
		"trafficDistribution",
	},
	reflect.TypeOf(api.ServicePort{}):  {"appProtocol"},
	reflect.TypeOf(api.EndpointPort{}): {"appProtocol"},
	// Ingress backends are Services; a class picks its nodes by annotation.
	reflect.TypeOf(api.IngressBackend{}):   {"resource"},
	reflect.TypeOf(api.IngressClassSpec{}): {"parameters"},
	reflect.TypeOf(api.Volume{}): {
		"persistentVolumeClaim", "downwardAPI", "projected", "nfs",
		"iscsi", "csi", "ephemeral", "image", "gitRepo", "awsElasticBlockStore",
		"gcePersistentDisk", "azureDisk", "azureFile", "cephfs", "cinder", "fc", "flexVolume",
		"flocker", "glusterfs", "photonPersistentDisk", "portworxVolume", "quobyte", "rbd",
		"scaleIO", "storageos", "vsphereVolume",
	},

	// Autoscalers follow the cpu and memory of pods (Resource metrics).
	reflect.TypeOf(api.MetricSpec{}):        {"pods", "object", "external", "containerResource"},
	reflect.TypeOf(api.MetricStatus{}):      {"pods", "object", "external", "containerResource"},
	reflect.TypeOf(api.MetricTarget{}):      {"value"},
	reflect.TypeOf(api.MetricValueStatus{}): {"value"},
	reflect.TypeOf(api.HPAScalingRules{}):   {"tolerance"},
}

func isUnsupported(t reflect.Type, name string) bool {
	for _, n := range unsupported[t] {
		if n == name {
			return true
		}
	}
	return false
}

var (
	unmarshalerType = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()
	quantityType    = reflect.TypeOf(api.Quantity(""))
	timeType        = reflect.TypeOf(api.Time{})
	intOrStringType = reflect.TypeOf(api.IntOrString{})
)

// walkValue checks the generic value v against Go type t, as encoding/json
// would decode it, but strictly: exact field names only, no unknown fields,
// and every type mismatch reported with its path. A null is accepted
// anywhere, as encoding/json accepts it.
//
// What it reports it also takes out of v, so that the rest still decodes:
// unknown and unsupported fields and fields and map values of the wrong
// type are deleted, and list items of the wrong type become null (so that
// the items after them keep their indexes and paths). It returns false when
// v itself is of the wrong type, for the caller to take out.
//
// It is one switch over the kinds of Go type a manifest can hold, each
// case short; cut apart, every piece would need the collector, the path
// and the taking-out rule again.
func walkValue(c *collector, v any, t reflect.Type, path string) bool {
	if v == nil {
		return true
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return walkUnmarshaler(c, v, t, path)
	}
	if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
		// encoding/json reads []byte from a base64 string.
		s, ok := v.(string)
		if !ok {
			c.add(path, "must be a base64-encoded string")
			return false
		}
		if _, err := base64.StdEncoding.DecodeString(s); err != nil {
			c.add(path, "must be a base64-encoded string")
			return false
		}
		return true
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			c.add(path, "must be an object")
			return false
		}
		fields := fieldsOf(t)
		for _, k := range sortedKeys(m) {
			p := key(path, k)
			ft, ok := fields[k]
			switch {
			case ok:
				if !walkValue(c, m[k], ft, p) {
					delete(m, k)
				}
			case isUnsupported(t, k):
				c.add(p, "not supported by Flotilla")
				delete(m, k)
			default:
				c.add(p, "unknown field")
				delete(m, k)
			}
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			c.add(path, "must be an object")
			return false
		}
		if t.Key().Kind() != reflect.String {
			c.add(path, "cannot be decoded: map keys are not strings")
			return false
		}
		for _, k := range sortedKeys(m) {
			if !walkValue(c, m[k], t.Elem(), key(path, k)) {
				delete(m, k)
			}
		}
	case reflect.Slice, reflect.Array:
		list, ok := v.([]any)
		if !ok {
			c.add(path, "must be a list")
			return false
		}
		if t.Kind() == reflect.Array && len(list) > t.Len() {
			c.addf(path, "must have at most %d items", t.Len())
			return false
		}
		for i, item := range list {
			if !walkValue(c, item, t.Elem(), index(path, i)) {
				list[i] = nil
			}
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			c.add(path, "must be a string"+quoteHint(c, v))
			return false
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			c.add(path, "must be a boolean")
			return false
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			c.add(path, "must be an integer")
			return false
		}
		if _, err := strconv.ParseInt(n.String(), 10, t.Bits()); err != nil {
			if isRangeError(err) {
				c.addf(path, "must be an integer between %d and %d", int64(math.MinInt64)>>(64-t.Bits()), int64(math.MaxInt64)>>(64-t.Bits()))
			} else {
				c.add(path, "must be an integer")
			}
			return false
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, ok := v.(json.Number)
		if !ok {
			c.add(path, "must be a non-negative integer")
			return false
		}
		if _, err := strconv.ParseUint(n.String(), 10, t.Bits()); err != nil {
			if isRangeError(err) {
				c.addf(path, "must be a non-negative integer at most %d", uint64(math.MaxUint64)>>(64-t.Bits()))
			} else {
				c.add(path, "must be a non-negative integer")
			}
			return false
		}
	case reflect.Float32, reflect.Float64:
		n, ok := v.(json.Number)
		if !ok {
			c.add(path, "must be a number")
			return false
		}
		if _, err := strconv.ParseFloat(n.String(), t.Bits()); err != nil {
			c.add(path, "must be a number in range")
			return false
		}
	case reflect.Interface:
		// Anything goes.
	default:
		c.addf(path, "cannot be decoded into %s", t)
		return false
	}
	return true
}

// quoteHint explains the usual cause of a number or boolean where a string
// belongs in YAML: an unquoted value such as 1.0, yes or n.
func quoteHint(c *collector, v any) string {
	if !c.yaml {
		return ""
	}
	switch v.(type) {
	case bool:
		return " (quote the value: YAML reads unquoted true, false, yes, no, on, off, y and n as booleans)"
	case json.Number:
		return " (quote the value: YAML reads it as a number)"
	}
	return ""
}

func isRangeError(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// walkUnmarshaler checks a value for a type with its own JSON decoding by
// letting the type decode it, and reports whether it decoded.
func walkUnmarshaler(c *collector, v any, t reflect.Type, path string) bool {
	b, err := json.Marshal(v)
	if err != nil {
		c.addf(path, "cannot be encoded: %v", err)
		return false
	}
	u, ok := reflect.New(t).Interface().(json.Unmarshaler)
	if !ok {
		return true
	}
	err = u.UnmarshalJSON(b)
	if tm, ok := u.(*api.Time); ok && err == nil && !tm.IsZero() {
		// RFC 3339 has four-digit years; a time outside them would not
		// encode back into something this decoder reads.
		if y := tm.UTC().Year(); y < 0 || y > 9999 {
			err = fmt.Errorf("year %d out of range", y)
		}
	}
	if err != nil {
		switch t {
		case quantityType:
			c.add(path, `must be a quantity: a string such as "250m" or "128Mi", or a number`)
		case timeType:
			c.add(path, `must be an RFC 3339 time such as "2024-05-01T12:00:00Z", or null`)
		case intOrStringType:
			if _, isNumber := v.(json.Number); isNumber {
				c.addf(path, "must be an integer between %d and %d, or a string", math.MinInt32, math.MaxInt32)
			} else {
				c.add(path, `must be an integer or a string (such as 8080, "http" or "25%")`)
			}
		default:
			c.add(path, clip(err.Error(), 200))
		}
		return false
	}
	return true
}

var fieldCache sync.Map // reflect.Type → map[string]reflect.Type

// fieldsOf returns the JSON field names of struct type t and their types,
// flattening embedded structs that have no JSON name (`json:",inline"`) the
// way encoding/json does. A field declared directly wins over one promoted
// from an embedded struct.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	fields := map[string]reflect.Type{}
	promoted := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for n, typ := range fieldsOf(ft) {
					promoted[n] = typ
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	for n, typ := range promoted {
		if _, ok := fields[n]; !ok {
			fields[n] = typ
		}
	}
	fieldCache.Store(t, fields)
	return fields
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// describe names the JSON type of a generic value, for messages.
func describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}
