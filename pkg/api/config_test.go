package api

import (
	"strings"
	"testing"
)

func TestValidateConfigKey(t *testing.T) {
	for _, ok := range []string{"a", "tls.crt", "ssh-privatekey", "A_B-c.d", ".hidden", "a..b", strings.Repeat("k", 253)} {
		if err := ValidateConfigKey(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "..data", "a/b", "a b", "ü", "a:b", strings.Repeat("k", 254)} {
		if err := ValidateConfigKey(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestLookupNewKinds(t *testing.T) {
	for name, want := range map[string]string{
		"secret": KindSecret, "secrets": KindSecret, "Secret": KindSecret,
		"cm": KindConfigMap, "configmaps": KindConfigMap, "configmap": KindConfigMap,
		"csr": KindCertificateSigningRequest, "certificatesigningrequests": KindCertificateSigningRequest,
		"certificatesigningrequests.certificates.k8s.io": KindCertificateSigningRequest,
		"daemonsets.apps": KindDaemonSet, "ds": KindDaemonSet,
	} {
		k, err := LookupResource(name)
		if err != nil || k.Kind != want {
			t.Errorf("LookupResource(%q) = %s, %v", name, k.Kind, err)
		}
	}
	// A group belongs to its kinds only.
	for _, bad := range []string{"pods.apps", "secrets.certificates.k8s.io", "csr.apps"} {
		if k, err := LookupResource(bad); err == nil {
			t.Errorf("LookupResource(%q) = %s", bad, k.Kind)
		}
	}
	for kind, writable := range map[string]bool{KindSecret: true, KindConfigMap: true, KindCertificateSigningRequest: false} {
		k, ok := LookupKind(kind)
		if !ok || k.Writable != writable {
			t.Errorf("%s: writable %v", kind, k.Writable)
		}
		if obj := k.NewObject(); obj.GetTypeMeta().Kind != kind || obj.GetTypeMeta().APIVersion != k.APIVersion {
			t.Errorf("%s: NewObject %+v", kind, obj.GetTypeMeta())
		}
	}
	if k, _ := LookupKind(KindCertificateSigningRequest); k.Namespaced || k.APIVersion != "certificates.k8s.io/v1" {
		t.Errorf("csr kind %+v", k)
	}
}

func TestCAFingerprint(t *testing.T) {
	fp := CAFingerprint([]byte("der"))
	if !strings.HasPrefix(fp, "sha256:") || len(fp) != 71 {
		t.Fatalf("%q", fp)
	}
	b, err := ParseCAFingerprint(fp)
	if err != nil || len(b) != 32 {
		t.Fatal(err)
	}
	var pairs []string
	for _, c := range b {
		pairs = append(pairs, strings.ToUpper(hexByte(c)))
	}
	if got, err := ParseCAFingerprint("SHA256 Fingerprint=" + strings.Join(pairs, ":")); err != nil || string(got) != string(b) {
		t.Fatalf("openssl form: %v", err)
	}
	if _, err := ParseCAFingerprint("sha256:" + strings.Repeat("0", 63)); err == nil {
		t.Fatal("63 digits accepted")
	}
}

func hexByte(b byte) string {
	return string("0123456789abcdef"[b>>4]) + string("0123456789abcdef"[b&15])
}

func TestCertificateCondition(t *testing.T) {
	var st CertificateSigningRequestStatus
	if st.Condition(CertificateApproved) != nil {
		t.Fatal("condition on an empty status")
	}
	st.Conditions = append(st.Conditions, CertificateSigningRequestCondition{Type: CertificateDenied, Status: ConditionTrue})
	if c := st.Condition(CertificateDenied); c == nil || c.Status != ConditionTrue {
		t.Fatal("Condition")
	}
}
