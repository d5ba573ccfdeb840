package apiserver

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
	kubediscovery "k8s.io/client-go/discovery"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// v3Docs reads every OpenAPI v3 document as client-go does.
func v3Docs(t *testing.T, k *kubeServer) map[string]*spec3.OpenAPI {
	t.Helper()
	dc, err := kubediscovery.NewDiscoveryClientForConfig(k.cfg)
	if err != nil {
		t.Fatal(err)
	}
	paths, err := dc.OpenAPIV3().Paths()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*spec3.OpenAPI{}
	for name, gv := range paths {
		b, err := gv.Schema("application/json")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var doc spec3.OpenAPI
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = &doc
	}
	return out
}

// schemaOfKind finds the schema marked with a group-version-kind, as
// kubectl explain does.
func schemaOfKind(doc *spec3.OpenAPI, group, version, kind string) *spec.Schema {
	for _, s := range doc.Components.Schemas {
		gvks, _ := s.Extensions["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			m := g.(map[string]any)
			if m["group"] == group && m["version"] == version && m["kind"] == kind {
				return s
			}
		}
	}
	return nil
}

// resolve follows a reference (alone or as the one member of allOf).
func resolve(doc *spec3.OpenAPI, s spec.Schema) spec.Schema {
	if len(s.AllOf) == 1 {
		s = s.AllOf[0]
	}
	if ref := s.Ref.String(); ref != "" {
		return *doc.Components.Schemas[strings.TrimPrefix(ref, "#/components/schemas/")]
	}
	return s
}

func TestOpenAPIV3DescribesEveryKind(t *testing.T) {
	k := newKubeServer(t, nil)
	docs := v3Docs(t, k)
	for _, kind := range api.Kinds() {
		group, version := splitAPIVersion(kind.APIVersion)
		path := "api/" + version
		if group != "" {
			path = "apis/" + kind.APIVersion
		}
		doc, ok := docs[path]
		if !ok {
			t.Errorf("%s: no OpenAPI document %s", kind.Kind, path)
			continue
		}
		s := schemaOfKind(doc, group, version, kind.Kind)
		if s == nil {
			t.Errorf("%s: no schema with its group-version-kind", kind.Kind)
			continue
		}
		// Every JSON field of the Go type is a property.
		typ := reflect.TypeOf(kind.New()).Elem()
		for _, f := range jsonFields(typ) {
			if _, ok := s.Properties[f]; !ok {
				t.Errorf("%s: field %q is not in the schema", kind.Kind, f)
			}
		}
		// kubectl finds a kind's GVK on its paths, and whether a patch
		// takes fieldValidation (then it leaves validation to the hub).
		var sawGet, sawPatch bool
		for p, item := range doc.Paths.Paths {
			if !strings.HasSuffix(p, "/"+kind.Resource+"/{name}") {
				continue
			}
			sawGet = item.Get != nil && item.Get.Extensions["x-kubernetes-group-version-kind"] != nil
			if item.Patch != nil {
				sawPatch = slices.ContainsFunc(item.Patch.Parameters, func(p *spec3.Parameter) bool {
					return p.Name == "fieldValidation" && p.In == "query"
				})
			}
		}
		if !sawGet || sawPatch != kind.Writable {
			t.Errorf("%s: get with its GVK %v, patch with fieldValidation %v (writable %v)", kind.Kind, sawGet, sawPatch, kind.Writable)
		}
	}
	// What kubectl explain pods.spec.containers walks through.
	core := docs["api/v1"]
	pod := schemaOfKind(core, "", "v1", "Pod")
	podSpec := resolve(core, pod.Properties["spec"])
	containers := podSpec.Properties["containers"]
	if !slices.Contains(podSpec.Required, "containers") || containers.Items == nil {
		t.Fatalf("PodSpec: required %v, containers %+v", podSpec.Required, containers)
	}
	container := resolve(core, *containers.Items.Schema)
	if !slices.Contains(container.Required, "name") || container.Properties["image"].Type[0] != "string" || container.Description == "" {
		t.Errorf("Container: %+v", container)
	}
	port := resolve(core, resolve(core, resolve(core, container.Properties["livenessProbe"]).Properties["httpGet"]).Properties["port"])
	if port.Extensions["x-kubernetes-int-or-string"] != true {
		t.Errorf("httpGet.port is not int-or-string: %+v", port)
	}
	// Flotilla's own fields are there too.
	ds := schemaOfKind(docs["apis/apps/v1"], "apps", "v1", "DaemonSet")
	if _, ok := resolve(docs["apis/apps/v1"], ds.Properties["spec"]).Properties["rollout"]; !ok {
		t.Error("DaemonSet spec.rollout is not in the schema")
	}
	code, _ := call(t, k.srv, http.MethodGet, "/openapi/v3/apis/batch/v1", "")
	if code != http.StatusNotFound {
		t.Errorf("the document of a group the hub does not serve: %d, want 404", code)
	}
}

// jsonFields are the JSON names of t's fields, embedded ones inline.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
		case f.Anonymous && name == "":
			out = append(out, jsonFields(f.Type)...)
		case name != "":
			out = append(out, name)
		case f.IsExported():
			out = append(out, f.Name)
		}
	}
	return out
}

func TestOpenAPIV2AsProtobuf(t *testing.T) {
	k := newKubeServer(t, nil)
	req, _ := http.NewRequest(http.MethodGet, k.srv.URL+"/openapi/v2", nil)
	req.Header.Set("Accept", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var doc openapi_v2.Document
	if resp.StatusCode != 200 || proto.Unmarshal(b, &doc) != nil {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var names []string
	for _, d := range doc.GetDefinitions().GetAdditionalProperties() {
		names = append(names, d.GetName())
	}
	if !slices.Contains(names, definitionName(reflect.TypeFor[api.Pod]())) || doc.GetSwagger() != "2.0" {
		t.Errorf("swagger %q, definitions %v", doc.GetSwagger(), names)
	}
}

// The descriptions are pkg/api's doc comments, copied by go generate:
// the copy must be current.
func TestAPIDocsAreCurrent(t *testing.T) {
	out := filepath.Join(t.TempDir(), "docs.go")
	cmd := exec.Command("go", "run", "./internal/apidocgen", "-src", "../../../pkg/api", "-out", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apidocgen: %v\n%s", err, b)
	}
	want, _ := os.ReadFile(out)
	got, _ := os.ReadFile("zz_generated_apidoc.go")
	if !bytes.Equal(got, want) {
		t.Error("zz_generated_apidoc.go is not pkg/api's current doc comments: run go generate ./hub/internal/apiserver")
	}
}
