package apiserver

// OpenAPI: the schema of every served resource, made by reflection over
// pkg/api's Go types and their JSON tags (with their doc comments as the
// descriptions, zz_generated_apidoc.go), so that it is always the shape
// the hub decodes. /openapi/v2 serves one Swagger 2.0 document (JSON, or
// the protobuf kubectl asks for), /openapi/v3 one OpenAPI 3.0 document per
// group version, through kube-openapi's handlers. kubectl explain reads
// them; kubectl apply finds in them that a patch takes fieldValidation,
// and so leaves validation to the hub, whose refusal names the field
// path.

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"k8s.io/kube-openapi/pkg/handler"
	"k8s.io/kube-openapi/pkg/handler3"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// openAPIFlavor is what differs between the two documents.
type openAPIFlavor struct {
	refPrefix string // where definitions are: "#/definitions/", "#/components/schemas/"
	v3        bool
}

var (
	flavorV2 = openAPIFlavor{refPrefix: "#/definitions/"}
	flavorV3 = openAPIFlavor{refPrefix: "#/components/schemas/", v3: true}
)

// schemaBuilder makes the JSON schemas of Go types, each named struct
// type once, as a definition the others refer to.
type schemaBuilder struct {
	flavor openAPIFlavor
	defs   map[string]spec.Schema
	// gvks are the group-version-kinds of the top-level kinds, by type.
	gvks map[reflect.Type][]any
}

func newSchemaBuilder(f openAPIFlavor) *schemaBuilder {
	return &schemaBuilder{flavor: f, defs: map[string]spec.Schema{}, gvks: map[reflect.Type][]any{}}
}

// Types with a JSON form of their own.
var (
	typeTime        = reflect.TypeFor[api.Time]()
	typeQuantity    = reflect.TypeFor[api.Quantity]()
	typeIntOrString = reflect.TypeFor[api.IntOrString]()
	typeRawMessage  = reflect.TypeFor[json.RawMessage]()
)

// definitionName is a type's definition: its package path reversed, as
// kube-openapi names Go types ("com.github.flotilla-edge.flotilla.pkg.api.Pod").
func definitionName(t reflect.Type) string {
	pkg := t.PkgPath()
	host, rest, _ := strings.Cut(pkg, "/")
	labels := strings.Split(host, ".")
	slices.Reverse(labels)
	return strings.Join(labels, ".") + "." + strings.ReplaceAll(rest, "/", ".") + "." + t.Name()
}

// kind adds the definition of a top-level kind, marked with its
// group-version-kind, and returns its name.
func (b *schemaBuilder) kind(t reflect.Type, group, version, kind string) string {
	b.gvks[t] = append(b.gvks[t], map[string]any{"group": group, "version": version, "kind": kind})
	name := definitionName(t)
	delete(b.defs, name) // made again, with its group-version-kind
	b.schema(t)
	return name
}

func (b *schemaBuilder) ref(name string) spec.Schema {
	return spec.Schema{SchemaProps: spec.SchemaProps{Ref: spec.MustCreateRef(b.flavor.refPrefix + name)}}
}

func typed(t, format string) spec.Schema {
	return spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{t}, Format: format}}
}

// intOrString is Kubernetes' schema of a value that is a number or a
// string.
func (b *schemaBuilder) intOrString(v2Format string) spec.Schema {
	if !b.flavor.v3 {
		return typed("string", v2Format)
	}
	s := spec.Schema{SchemaProps: spec.SchemaProps{AnyOf: []spec.Schema{typed("integer", ""), typed("string", "")}}}
	s.AddExtension("x-kubernetes-int-or-string", true)
	return s
}

// schema returns the schema of a value of type t: a reference for a named
// struct (whose definition it adds), the schema itself for anything else.
func (b *schemaBuilder) schema(t reflect.Type) spec.Schema {
	switch t {
	case typeTime:
		return typed("string", "date-time")
	case typeQuantity:
		return b.named(t, b.intOrString("quantity"))
	case typeIntOrString:
		return b.named(t, b.intOrString("int-or-string"))
	case typeRawMessage:
		return preserveUnknown()
	}
	switch t.Kind() {
	case reflect.Pointer:
		return b.schema(t.Elem())
	case reflect.Bool:
		return typed("boolean", "")
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Uint8, reflect.Uint16:
		return typed("integer", "int32")
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint32, reflect.Uint64:
		return typed("integer", "int64")
	case reflect.Float32, reflect.Float64:
		return typed("number", "double")
	case reflect.String:
		return typed("string", "")
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return typed("string", "byte") // []byte is base64 in JSON
		}
		item := b.schema(t.Elem())
		return spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"array"}, Items: &spec.SchemaOrArray{Schema: &item}}}
	case reflect.Map:
		value := b.schema(t.Elem())
		return spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"object"}, AdditionalProperties: &spec.SchemaOrBool{Allows: true, Schema: &value}}}
	case reflect.Struct:
		if t.Name() == "" {
			return b.object(t)
		}
		name := definitionName(t)
		if _, ok := b.defs[name]; !ok {
			b.defs[name] = spec.Schema{} // a type that refers to itself finds it
			def := b.object(t)
			def.Description = apiDocs[t.Name()]
			if gvks := b.gvks[t]; len(gvks) > 0 {
				def.AddExtension("x-kubernetes-group-version-kind", gvks)
			}
			b.defs[name] = def
		}
		return b.ref(name)
	}
	return preserveUnknown()
}

// named adds s as t's definition, with t's doc, and returns a reference
// to it: kubectl explain shows a field of such a type as <Quantity>.
func (b *schemaBuilder) named(t reflect.Type, s spec.Schema) spec.Schema {
	name := definitionName(t)
	if _, ok := b.defs[name]; !ok {
		s.Description = apiDocs[t.Name()]
		b.defs[name] = s
	}
	return b.ref(name)
}

func preserveUnknown() spec.Schema {
	s := spec.Schema{}
	s.AddExtension("x-kubernetes-preserve-unknown-fields", true)
	return s
}

// object is the schema of struct t: its JSON fields, embedded structs'
// fields inline. A field without omitempty whose value is a scalar or a
// list is required.
func (b *schemaBuilder) object(t reflect.Type) spec.Schema {
	s := spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"object"}, Properties: map[string]spec.Schema{}}}
	b.fields(t, t.Name(), &s)
	slices.Sort(s.Required)
	return s
}

func (b *schemaBuilder) fields(t reflect.Type, docType string, s *spec.Schema) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, hasTag := f.Tag.Lookup("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				b.fields(ft, ft.Name(), s)
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		prop := b.schema(f.Type)
		desc := apiDocs[docType+"."+name]
		if desc != "" || !hasTag {
			prop = b.described(prop, desc)
		}
		s.Properties[name] = prop
		omitempty := strings.Contains(","+opts+",", ",omitempty,")
		if !omitempty && required(f.Type) {
			s.Required = append(s.Required, name)
		}
	}
}

// described gives a schema its description: beside a reference, as
// Kubernetes writes it (in OpenAPI 3, a reference's siblings are ignored,
// so there it is wrapped in allOf).
func (b *schemaBuilder) described(s spec.Schema, desc string) spec.Schema {
	if desc == "" {
		return s
	}
	if s.Ref.String() != "" && b.flavor.v3 {
		return spec.Schema{SchemaProps: spec.SchemaProps{AllOf: []spec.Schema{s}, Description: desc}}
	}
	s.Description = desc
	return s
}

// required reports whether a field of type t without omitempty is
// required: scalars and lists are; objects, maps and pointers are not.
func required(t reflect.Type) bool {
	if t == typeIntOrString {
		return true
	}
	switch t.Kind() {
	case reflect.Bool, reflect.String, reflect.Slice,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return t != typeQuantity && t != typeRawMessage
	}
	return false
}

// operation is one served operation on a resource path.
type operation struct {
	method string // get, patch, delete
	action string // x-kubernetes-action: list, get, patch, delete
	id     string
	list   bool // answers the resource's list
}

// resourcePath is one path of a resource and the operations on it.
type resourcePath struct {
	path       string
	namespaced bool // has {namespace}
	named      bool // has {name}
	ops        []operation
}

// pathsOf are the paths and operations the API serves for r.
func pathsOf(gv groupVersion, r servedResource) []resourcePath {
	prefix := "/api/" + gv.String()
	if gv.group != "" {
		prefix = "/apis/" + gv.String()
	}
	gvPart := operationIDPart(gv)
	has := func(verb string) bool { return slices.Contains(r.verbs, verb) }
	var out []resourcePath
	collection := func(path string, namespaced bool, id string) {
		if has("list") {
			out = append(out, resourcePath{path: path, namespaced: namespaced,
				ops: []operation{{method: "get", action: "list", id: "list" + id, list: true}}})
		}
	}
	item := resourcePath{path: prefix + "/" + r.resource + "/{name}", named: true}
	itemID := gvPart + r.kind
	if r.namespaced {
		collection(prefix+"/namespaces/{namespace}/"+r.resource, true, gvPart+"Namespaced"+r.kind)
		collection(prefix+"/"+r.resource, false, gvPart+r.kind+"ForAllNamespaces")
		item = resourcePath{path: prefix + "/namespaces/{namespace}/" + r.resource + "/{name}", namespaced: true, named: true}
		itemID = gvPart + "Namespaced" + r.kind
	} else {
		collection(prefix+"/"+r.resource, false, gvPart+r.kind)
	}
	for _, verb := range []string{"get", "patch", "delete"} {
		if has(verb) {
			prefix := map[string]string{"get": "read", "patch": "patch", "delete": "delete"}[verb]
			item.ops = append(item.ops, operation{method: verb, action: verb, id: prefix + itemID})
		}
	}
	if len(item.ops) > 0 {
		out = append(out, item)
	}
	return out
}

// operationIDPart is Kubernetes' group-version part of operation ids:
// CoreV1, AppsV1, CertificatesV1.
func operationIDPart(gv groupVersion) string {
	group := "core"
	if gv.group != "" {
		group, _, _ = strings.Cut(gv.group, ".")
	}
	return upperFirst(group) + upperFirst(gv.version)
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// The parameters of the operations.
const (
	descFieldValidation = "How the hub treats fields it does not know or support: it refuses them, naming each " +
		"field's path (Strict), whatever is asked."
	descNamespace = "The object's namespace."
	descName      = "The object's name."
)

// openAPIV2 is the Swagger 2.0 document of everything discovery lists.
func (d *discovery) openAPIV2() *spec.Swagger {
	b := newSchemaBuilder(flavorV2)
	paths := map[string]spec.PathItem{}
	for _, gv := range d.versions {
		for _, r := range gv.resources {
			name := b.kind(r.typ, gv.group, gv.version, r.kind)
			for _, p := range pathsOf(gv, r) {
				var item spec.PathItem
				if p.namespaced {
					item.Parameters = append(item.Parameters, pathParamV2("namespace", descNamespace))
				}
				if p.named {
					item.Parameters = append(item.Parameters, pathParamV2("name", descName))
				}
				for _, op := range p.ops {
					o := &spec.Operation{OperationProps: spec.OperationProps{
						ID: op.id, Consumes: []string{"application/json"}, Produces: []string{"application/json"},
						Responses: &spec.Responses{ResponsesProps: spec.ResponsesProps{StatusCodeResponses: map[int]spec.Response{
							200: {ResponseProps: spec.ResponseProps{Description: "OK", Schema: responseSchema(b, name, op)}},
						}}},
					}}
					o.AddExtension("x-kubernetes-action", op.action)
					o.AddExtension("x-kubernetes-group-version-kind", map[string]any{"group": gv.group, "version": gv.version, "kind": r.kind})
					switch op.method {
					case "get":
						item.Get = o
					case "delete":
						item.Delete = o
					case "patch":
						o.Consumes = []string{"application/merge-patch+json"}
						o.Parameters = append(o.Parameters, spec.Parameter{
							ParamProps:   spec.ParamProps{Name: "fieldValidation", In: "query", Description: descFieldValidation},
							SimpleSchema: spec.SimpleSchema{Type: "string"},
						})
						item.Patch = o
					}
				}
				paths[p.path] = item
			}
		}
	}
	return &spec.Swagger{SwaggerProps: spec.SwaggerProps{
		Swagger:     "2.0",
		Info:        &spec.Info{InfoProps: spec.InfoProps{Title: "Flotilla hub", Version: "v1." + KubernetesMinor}},
		Paths:       &spec.Paths{Paths: paths},
		Definitions: b.defs,
	}}
}

func pathParamV2(name, desc string) spec.Parameter {
	return spec.Parameter{
		ParamProps:   spec.ParamProps{Name: name, In: "path", Required: true, Description: desc},
		SimpleSchema: spec.SimpleSchema{Type: "string"},
	}
}

// responseSchema is what op answers: the object, or a list of them.
func responseSchema(b *schemaBuilder, name string, op operation) *spec.Schema {
	obj := b.ref(name)
	if !op.list {
		return &obj
	}
	list := spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"object"}, Required: []string{"items"}, Properties: map[string]spec.Schema{
		"apiVersion": typed("string", ""),
		"kind":       typed("string", ""),
		"metadata":   typed("object", ""),
		"items":      {SchemaProps: spec.SchemaProps{Type: []string{"array"}, Items: &spec.SchemaOrArray{Schema: &obj}}},
	}}}
	return &list
}

// openAPIV3 is the OpenAPI 3.0 document of one group version.
func (d *discovery) openAPIV3(gv groupVersion) *spec3.OpenAPI {
	b := newSchemaBuilder(flavorV3)
	paths := map[string]*spec3.Path{}
	for _, r := range gv.resources {
		name := b.kind(r.typ, gv.group, gv.version, r.kind)
		for _, p := range pathsOf(gv, r) {
			item := &spec3.Path{}
			if p.namespaced {
				item.Parameters = append(item.Parameters, pathParamV3("namespace", descNamespace))
			}
			if p.named {
				item.Parameters = append(item.Parameters, pathParamV3("name", descName))
			}
			for _, op := range p.ops {
				o := &spec3.Operation{OperationProps: spec3.OperationProps{
					OperationId: op.id,
					Responses: &spec3.Responses{ResponsesProps: spec3.ResponsesProps{StatusCodeResponses: map[int]*spec3.Response{
						200: {ResponseProps: spec3.ResponseProps{Description: "OK", Content: map[string]*spec3.MediaType{
							"application/json": {MediaTypeProps: spec3.MediaTypeProps{Schema: responseSchema(b, name, op)}},
						}}},
					}}},
				}}
				o.AddExtension("x-kubernetes-action", op.action)
				o.AddExtension("x-kubernetes-group-version-kind", map[string]any{"group": gv.group, "version": gv.version, "kind": r.kind})
				switch op.method {
				case "get":
					item.Get = o
				case "delete":
					item.Delete = o
				case "patch":
					o.Parameters = append(o.Parameters, &spec3.Parameter{ParameterProps: spec3.ParameterProps{
						Name: "fieldValidation", In: "query", Description: descFieldValidation, Schema: &spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"string"}}},
					}})
					body := b.ref(name)
					o.RequestBody = &spec3.RequestBody{RequestBodyProps: spec3.RequestBodyProps{Required: true, Content: map[string]*spec3.MediaType{
						"application/merge-patch+json": {MediaTypeProps: spec3.MediaTypeProps{Schema: &body}},
					}}}
					item.Patch = o
				}
			}
			paths[p.path] = item
		}
	}
	schemas := make(map[string]*spec.Schema, len(b.defs))
	for name, s := range b.defs {
		schemas[name] = &s
	}
	return &spec3.OpenAPI{
		Version:    "3.0.0",
		Info:       &spec.Info{InfoProps: spec.InfoProps{Title: "Flotilla hub", Version: "v1." + KubernetesMinor}},
		Paths:      &spec3.Paths{Paths: paths},
		Components: &spec3.Components{Schemas: schemas},
	}
}

func pathParamV3(name, desc string) *spec3.Parameter {
	return &spec3.Parameter{ParameterProps: spec3.ParameterProps{
		Name: name, In: "path", Required: true, Description: desc,
		Schema: &spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"string"}}},
	}}
}

// openAPIV3Path is where a group version's document is under
// /openapi/v3/: "api/v1", "apis/apps/v1".
func openAPIV3Path(gv groupVersion) string {
	if gv.group == "" {
		return "api/" + gv.version
	}
	return "apis/" + gv.String()
}

// muxPaths lets kube-openapi's handlers register on a ServeMux.
type muxPaths struct{ mux *http.ServeMux }

func (m muxPaths) Handle(path string, h http.Handler)         { m.mux.Handle("GET "+path, h) }
func (m muxPaths) HandlePrefix(prefix string, h http.Handler) { m.mux.Handle("GET "+prefix, h) }

// registerOpenAPI builds the documents and adds their routes.
func (s *Server) registerOpenAPI(mux *http.ServeMux) {
	handler.NewOpenAPIService(s.discovery.openAPIV2()).RegisterOpenAPIVersionedService("/openapi/v2", muxPaths{mux})
	v3 := handler3.NewOpenAPIService()
	served := map[string]bool{}
	for _, gv := range s.discovery.versions {
		v3.UpdateGroupVersion(openAPIV3Path(gv), s.discovery.openAPIV3(gv))
		served[openAPIV3Path(gv)] = true
	}
	// kube-openapi answers a group version it does not have with an empty
	// 200; a client is better told 404.
	inner := http.NewServeMux()
	if err := v3.RegisterOpenAPIV3VersionedService("/openapi/v3", muxPaths{inner}); err != nil {
		s.log.Error("OpenAPI v3 documents are not served", "err", err) // it never fails: it only registers
	}
	mux.HandleFunc("GET /openapi/v3", inner.ServeHTTP)
	mux.HandleFunc("GET /openapi/v3/", func(w http.ResponseWriter, r *http.Request) {
		if !served[strings.TrimPrefix(r.URL.Path, "/openapi/v3/")] {
			s.writeError(w, errorf(http.StatusNotFound, api.ReasonNotFound, "no OpenAPI document for %s: /openapi/v3 lists them", r.URL.Path))
			return
		}
		inner.ServeHTTP(w, r)
	})
}
