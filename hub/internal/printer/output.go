package printer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Output formats accepted by PrintObjects and PrintList.
const (
	FormatYAML = "yaml"
	FormatJSON = "json"
	FormatName = "name"
)

// PrintObjects writes objs in format yaml, json or name (kubectl's -o). One
// object prints as itself, as `get KIND NAME -o yaml` does; none or several
// print as a List. Every object carries apiVersion and kind, filled in from
// its Go type when its TypeMeta is empty; objs are not modified. Map keys
// come out sorted, as in kubectl's output.
func PrintObjects(w io.Writer, format string, objs []api.Object) error {
	if len(objs) == 1 && format != FormatName {
		return printEncoded(w, format, objs[0])
	}
	return PrintList(w, format, objs)
}

// PrintList is PrintObjects, except that yaml and json always wrap objs in
// a List, even a single one, as `kubectl get KIND -o yaml` does for a list
// query that matched one object.
func PrintList(w io.Writer, format string, objs []api.Object) error {
	if format == FormatName {
		return printNames(w, objs)
	}
	items := make([]any, 0, len(objs))
	for _, o := range objs {
		m, err := toMap(o)
		if err != nil {
			return err
		}
		items = append(items, m)
	}
	list := map[string]any{
		"apiVersion": "v1",
		"kind":       "List",
		"items":      items,
		"metadata":   map[string]any{"resourceVersion": ""},
	}
	return encode(w, format, list)
}

func printEncoded(w io.Writer, format string, obj api.Object) error {
	m, err := toMap(obj)
	if err != nil {
		return err
	}
	return encode(w, format, m)
}

func encode(w io.Writer, format string, v any) error {
	var out []byte
	switch format {
	case FormatJSON:
		b, err := json.MarshalIndent(v, "", "    ")
		if err != nil {
			return fmt.Errorf("encode json: %w", err)
		}
		out = append(b, '\n')
	case FormatYAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode yaml: %w", err)
		}
		out = b
	default:
		return unknownFormat(format)
	}
	if _, err := w.Write(out); err != nil {
		return fmt.Errorf("write %s: %w", format, err)
	}
	return nil
}

func unknownFormat(format string) error {
	return fmt.Errorf("unable to match a printer suitable for the output format %q, allowed formats are: %s,%s,%s",
		format, FormatJSON, FormatName, FormatYAML)
}

// TypeName is how kubectl names a kind in messages: "daemonset.apps", "pod".
func TypeName(k api.KindInfo) string {
	resource := strings.ToLower(k.Kind)
	if group, _, ok := strings.Cut(k.APIVersion, "/"); ok {
		resource += "." + group
	}
	return resource
}

// ObjectName is kubectl's "type/name": "daemonset.apps/agent", "pod/web-1".
func ObjectName(k api.KindInfo, name string) string {
	return TypeName(k) + "/" + name
}

// printNames writes kubectl's -o name lines: pod/web-1, daemonset.apps/agent.
func printNames(w io.Writer, objs []api.Object) error {
	var b strings.Builder
	for _, o := range objs {
		info, err := kindOf(o)
		if err != nil {
			return err
		}
		fmt.Fprintln(&b, ObjectName(info, o.GetObjectMeta().Name))
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write names: %w", err)
	}
	return nil
}

// toMap turns obj into its generic JSON form with apiVersion and kind set.
// Numbers stay json.Number so that large revisions keep every digit.
func toMap(obj api.Object) (map[string]any, error) {
	info, err := kindOf(obj)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode %s %q: %w", info.Kind, obj.GetObjectMeta().Name, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode %s %q: %w", info.Kind, obj.GetObjectMeta().Name, err)
	}
	m["apiVersion"] = info.APIVersion
	m["kind"] = info.Kind
	return m, nil
}

// kindOf returns the object's type: from its TypeMeta when set, else from
// its Go type.
func kindOf(obj api.Object) (api.KindInfo, error) {
	tm := obj.GetTypeMeta()
	if tm.Kind != "" {
		info, ok := api.LookupKind(tm.Kind)
		if !ok {
			info = api.KindInfo{Kind: tm.Kind}
		}
		if tm.APIVersion != "" {
			info.APIVersion = tm.APIVersion
		}
		return info, nil
	}
	t := reflect.TypeOf(obj)
	for _, k := range api.Kinds() {
		if reflect.TypeOf(k.New()) == t {
			return k, nil
		}
	}
	return api.KindInfo{}, fmt.Errorf("object %q: unknown kind for %T", obj.GetObjectMeta().Name, obj)
}
