package api

import (
	"encoding/json"
	"testing"
)

func TestLookupServiceKinds(t *testing.T) {
	for name, want := range map[string]string{
		"svc": KindService, "service": KindService, "services": KindService, "Service": KindService,
		"ep": KindEndpoints, "endpoints": KindEndpoints, "Endpoints": KindEndpoints,
	} {
		k, err := LookupResource(name)
		if err != nil || k.Kind != want {
			t.Errorf("LookupResource(%q) = %s, %v", name, k.Kind, err)
		}
	}
	for kind, writable := range map[string]bool{KindService: true, KindEndpoints: false} {
		k, ok := LookupKind(kind)
		if !ok || k.Writable != writable || !k.Namespaced || k.APIVersion != "v1" {
			t.Errorf("%s: %+v", kind, k)
		}
	}
}

func TestAffinityTimeout(t *testing.T) {
	ten := int32(10)
	for _, tc := range []struct {
		spec ServiceSpec
		want int32
	}{
		{ServiceSpec{}, 0},
		{ServiceSpec{SessionAffinity: ServiceAffinityNone}, 0},
		{ServiceSpec{SessionAffinity: ServiceAffinityClientIP}, DefaultClientIPServiceAffinitySeconds},
		{ServiceSpec{SessionAffinity: ServiceAffinityClientIP, SessionAffinityConfig: &SessionAffinityConfig{ClientIP: &ClientIPConfig{TimeoutSeconds: &ten}}}, 10},
	} {
		if got := tc.spec.AffinityTimeoutSeconds(); got != tc.want {
			t.Errorf("%+v: %d, want %d", tc.spec, got, tc.want)
		}
	}
}

// A Service as `kubectl get svc -o json` prints it decodes into the same
// JSON: the field names are Kubernetes'.
func TestServiceJSONIsKubernetes(t *testing.T) {
	in := `{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"default","creationTimestamp":null},` +
		`"spec":{"type":"NodePort","selector":{"app":"web"},` +
		`"ports":[{"name":"http","protocol":"TCP","port":8099,"targetPort":"http","nodePort":30080}],` +
		`"clusterIP":"10.43.0.7","clusterIPs":["10.43.0.7"],"ipFamilies":["IPv4"],"ipFamilyPolicy":"SingleStack",` +
		`"sessionAffinity":"ClientIP","sessionAffinityConfig":{"clientIP":{"timeoutSeconds":60}},` +
		`"internalTrafficPolicy":"Cluster","externalTrafficPolicy":"Local"},"status":{"loadBalancer":{}}}`
	var s Service
	if err := json.Unmarshal([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(&s)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Fatalf("round trip:\n%s\n%s", in, out)
	}
	if !s.Spec.Ports[0].TargetPort.IsString || s.Spec.ExternalTrafficPolicy != ServiceTrafficPolicyLocal {
		t.Fatalf("decoded %+v", s.Spec)
	}
}

func TestEffectiveDNSPolicy(t *testing.T) {
	if p := (&PodSpec{}).EffectiveDNSPolicy(); p != DNSClusterFirst {
		t.Fatalf("empty policy is %q", p)
	}
	if p := (&PodSpec{DNSPolicy: DNSNone}).EffectiveDNSPolicy(); p != DNSNone {
		t.Fatalf("None is %q", p)
	}
}
