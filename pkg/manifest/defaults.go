package manifest

import (
	"reflect"
	"strings"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// DefaultTerminationGracePeriodSeconds is how long a pod's containers get to
// stop before they are killed, when the spec does not say.
const DefaultTerminationGracePeriodSeconds = 30

// Default fills in what a manifest may leave out, as Kubernetes does: the
// type metadata of the object's Go type; the namespace of a namespaced
// object (namespace, or "default" when that is empty); and, in pod specs,
// restartPolicy Always, terminationGracePeriodSeconds 30, port protocol TCP
// and an imagePullPolicy of Always for images tagged "latest" or untagged
// and IfNotPresent otherwise. It never changes a value that is set, and it
// leaves DaemonSet template labels alone. A nil obj is left as it is.
func Default(obj api.Object, namespace string) {
	if isNil(obj) {
		return
	}
	info, ok := kindOf(obj)
	if !ok {
		return
	}
	tm := obj.GetTypeMeta()
	if tm.Kind == "" {
		tm.Kind = info.Kind
	}
	if tm.APIVersion == "" {
		tm.APIVersion = info.APIVersion
	}
	if meta := obj.GetObjectMeta(); info.Namespaced && meta.Namespace == "" {
		meta.Namespace = namespace
		if meta.Namespace == "" {
			meta.Namespace = api.DefaultNamespace
		}
	}
	switch o := obj.(type) {
	case *api.Pod:
		defaultPodSpec(&o.Spec)
	case *api.DaemonSet:
		defaultPodSpec(&o.Spec.Template.Spec)
	}
}

// kindOf finds the kind whose Go type obj has.
func kindOf(obj api.Object) (api.KindInfo, bool) {
	t := reflect.TypeOf(obj)
	for _, k := range api.Kinds() {
		if reflect.TypeOf(k.New()) == t {
			return k, true
		}
	}
	return api.KindInfo{}, false
}

func defaultPodSpec(spec *api.PodSpec) {
	if spec.RestartPolicy == "" {
		spec.RestartPolicy = api.RestartAlways
	}
	if spec.TerminationGracePeriodSeconds == nil {
		g := int64(DefaultTerminationGracePeriodSeconds)
		spec.TerminationGracePeriodSeconds = &g
	}
	for i := range spec.Containers {
		ct := &spec.Containers[i]
		if ct.ImagePullPolicy == "" {
			ct.ImagePullPolicy = api.PullIfNotPresent
			if tag, digest := imageTag(ct.Image); tag == "latest" || (tag == "" && digest == "") {
				ct.ImagePullPolicy = api.PullAlways
			}
		}
		for j := range ct.Ports {
			if ct.Ports[j].Protocol == "" {
				ct.Ports[j].Protocol = "TCP"
			}
		}
	}
}

// imageTag splits the tag and digest off an image reference such as
// "registry:5000/team/app:1.2@sha256:…". A colon before the last '/' belongs
// to the registry's port, not to a tag.
func imageTag(image string) (tag, digest string) {
	ref := image
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref, digest = ref[:i], ref[i+1:]
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		tag = ref[i+1:]
	}
	return tag, digest
}
