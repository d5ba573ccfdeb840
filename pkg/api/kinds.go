package api

import (
	"fmt"
	"reflect"
	"strings"
)

// KindInfo describes one resource type: how manifests name it, how the HTTP
// API and the CLI address it, and whether users may write it.
type KindInfo struct {
	Kind       string
	APIVersion string
	// Resource is the plural, lower-case name used in URLs and the CLI.
	Resource   string
	Singular   string
	ShortNames []string
	Namespaced bool
	// Writable is false for objects that only the hub and agents produce.
	Writable bool
	New      func() Object
}

// Kind names.
const (
	KindNamespace          = "Namespace"
	KindNode               = "Node"
	KindPod                = "Pod"
	KindDaemonSet          = "DaemonSet"
	KindDeployment         = "Deployment"
	KindControllerRevision = "ControllerRevision"
	KindEvent              = "Event"
	KindSecret             = "Secret"
	KindConfigMap          = "ConfigMap"
	KindService            = "Service"
	KindEndpoints          = "Endpoints"
	KindIngress            = "Ingress"
	KindIngressClass       = "IngressClass"
	// KindCertificateSigningRequest is a node's enrolment request.
	KindCertificateSigningRequest = "CertificateSigningRequest"
)

// kinds is the fixed table of supported resource types.
var kinds = []KindInfo{
	{Kind: KindNamespace, APIVersion: "v1", Resource: "namespaces", Singular: "namespace", ShortNames: []string{"ns"}, Writable: true,
		New: func() Object { return &Namespace{} }},
	{Kind: KindNode, APIVersion: "v1", Resource: "nodes", Singular: "node", ShortNames: []string{"no"}, Writable: true,
		New: func() Object { return &Node{} }},
	{Kind: KindPod, APIVersion: "v1", Resource: "pods", Singular: "pod", ShortNames: []string{"po"}, Namespaced: true,
		New: func() Object { return &Pod{} }},
	{Kind: KindDaemonSet, APIVersion: "apps/v1", Resource: "daemonsets", Singular: "daemonset", ShortNames: []string{"ds"}, Namespaced: true, Writable: true,
		New: func() Object { return &DaemonSet{} }},
	{Kind: KindDeployment, APIVersion: "apps/v1", Resource: "deployments", Singular: "deployment", ShortNames: []string{"deploy"}, Namespaced: true, Writable: true,
		New: func() Object { return &Deployment{} }},
	{Kind: KindControllerRevision, APIVersion: "apps/v1", Resource: "controllerrevisions", Singular: "controllerrevision", Namespaced: true,
		New: func() Object { return &ControllerRevision{} }},
	{Kind: KindEvent, APIVersion: "v1", Resource: "events", Singular: "event", ShortNames: []string{"ev"}, Namespaced: true,
		New: func() Object { return &Event{} }},
	{Kind: KindSecret, APIVersion: "v1", Resource: "secrets", Singular: "secret", Namespaced: true, Writable: true,
		New: func() Object { return &Secret{} }},
	{Kind: KindConfigMap, APIVersion: "v1", Resource: "configmaps", Singular: "configmap", ShortNames: []string{"cm"}, Namespaced: true, Writable: true,
		New: func() Object { return &ConfigMap{} }},
	{Kind: KindService, APIVersion: "v1", Resource: "services", Singular: "service", ShortNames: []string{"svc"}, Namespaced: true, Writable: true,
		New: func() Object { return &Service{} }},
	// The hub keeps each Service's Endpoints from the pods it selects.
	{Kind: KindEndpoints, APIVersion: "v1", Resource: "endpoints", Singular: "endpoints", ShortNames: []string{"ep"}, Namespaced: true,
		New: func() Object { return &Endpoints{} }},
	{Kind: KindIngress, APIVersion: "networking.k8s.io/v1", Resource: "ingresses", Singular: "ingress", ShortNames: []string{"ing"}, Namespaced: true, Writable: true,
		New: func() Object { return &Ingress{} }},
	{Kind: KindIngressClass, APIVersion: "networking.k8s.io/v1", Resource: "ingressclasses", Singular: "ingressclass", Writable: true,
		New: func() Object { return &IngressClass{} }},
	// Certificate requests are made by enrolment and decided through their
	// approval subresource, never written directly.
	{Kind: KindCertificateSigningRequest, APIVersion: "certificates.k8s.io/v1", Resource: "certificatesigningrequests", Singular: "certificatesigningrequest", ShortNames: []string{"csr"},
		New: func() Object { return &CertificateSigningRequest{} }},
	{Kind: KindHorizontalPodAutoscaler, APIVersion: "autoscaling/v2", Resource: "horizontalpodautoscalers", Singular: "horizontalpodautoscaler", ShortNames: []string{"hpa"}, Namespaced: true, Writable: true,
		New: func() Object { return &HorizontalPodAutoscaler{} }},
}

// kindByType maps each supported object type (the struct, not its
// pointer) to its kind.
var kindByType = func() map[reflect.Type]string {
	m := make(map[reflect.Type]string, len(kinds))
	for _, k := range kinds {
		m[reflect.TypeOf(k.New()).Elem()] = k.Kind
	}
	return m
}()

// KindOfType returns the kind of the object type t (a struct type such as
// Pod), and false if t is not a supported kind.
func KindOfType(t reflect.Type) (string, bool) {
	k, ok := kindByType[t]
	return k, ok
}

// Kinds returns every supported resource type.
func Kinds() []KindInfo { return kinds }

// LookupKind finds a resource type by its Kind (for example "DaemonSet").
func LookupKind(kind string) (KindInfo, bool) {
	for _, k := range kinds {
		if k.Kind == kind {
			return k, true
		}
	}
	return KindInfo{}, false
}

// LookupResource finds a resource type by any name a user may type:
// plural, singular, short name or Kind, in any case, optionally followed
// by the kind's API group ("ds", "daemonset", "DaemonSets",
// "daemonsets.apps", "csr", "certificatesigningrequests.certificates.k8s.io").
func LookupResource(name string) (KindInfo, error) {
	n := strings.ToLower(name)
	for _, k := range kinds {
		m := n
		// A name may carry its kind's API group, as kubectl accepts it.
		if group, _, ok := strings.Cut(k.APIVersion, "/"); ok {
			m = strings.TrimSuffix(n, "."+group)
		}
		if m == k.Resource || m == k.Singular || m == strings.ToLower(k.Kind) {
			return k, nil
		}
		for _, s := range k.ShortNames {
			if m == s {
				return k, nil
			}
		}
	}
	return KindInfo{}, fmt.Errorf("the server doesn't have a resource type %q", name)
}

// NewObject returns an empty object of kind with its TypeMeta filled in.
func (k KindInfo) NewObject() Object {
	o := k.New()
	tm := o.GetTypeMeta()
	tm.APIVersion, tm.Kind = k.APIVersion, k.Kind
	return o
}

// DefaultNamespace is the namespace used when none is given.
const DefaultNamespace = "default"
