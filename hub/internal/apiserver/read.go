package apiserver

// Reads as Kubernetes clients make them: a list filtered by label and
// field selectors, in pages (limit, continue), at a resourceVersion; one
// object; either as JSON or as the meta.k8s.io Table kubectl asks for to
// print; and, with ?watch=1, a watch (watch.go).

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/munnerz/goautoneg"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/flotilla-edge/flotilla/hub/internal/desired"
	"github.com/flotilla-edge/flotilla/hub/internal/lease"
	"github.com/flotilla-edge/flotilla/hub/internal/printer"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// ReasonExpired is the reason of a 410: a resourceVersion or continue
// token older than the hub keeps changes for.
const ReasonExpired = "Expired"

// listQuery is a list's or watch's query parameters.
type listQuery struct {
	labels              api.Selector
	fields              fields.Selector
	limit               int
	cont                *continueToken
	resourceVersion     string
	resourceVersionExac bool
	watch               bool
	bookmarks           bool
	sendInitialEvents   bool
	timeout             time.Duration
}

func parseListQuery(q url.Values, k api.KindInfo) (*listQuery, error) {
	lq := &listQuery{resourceVersion: q.Get("resourceVersion")}
	var err error
	if lq.labels, err = api.ParseSelector(q.Get("labelSelector")); err != nil {
		return nil, errorf(http.StatusBadRequest, api.ReasonBadRequest, "labelSelector: %v", err)
	}
	if lq.fields, err = parseFieldSelector(q.Get("fieldSelector"), k); err != nil {
		return nil, err
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, errorf(http.StatusBadRequest, api.ReasonBadRequest, "limit %q: want a number of objects, 0 or more", v)
		}
		lq.limit = n
	}
	if v := q.Get("continue"); v != "" {
		if lq.cont, err = parseContinue(v); err != nil {
			return nil, err
		}
		if lq.resourceVersion != "" && lq.resourceVersion != "0" {
			return nil, errorf(http.StatusBadRequest, api.ReasonBadRequest, "resourceVersion and continue cannot both be given: the continue token holds the list's version")
		}
	}
	if lq.watch, err = boolParam(q, "watch"); err != nil {
		return nil, err
	}
	if lq.bookmarks, err = boolParam(q, "allowWatchBookmarks"); err != nil {
		return nil, err
	}
	if lq.sendInitialEvents, err = boolParam(q, "sendInitialEvents"); err != nil {
		return nil, err
	}
	switch m := q.Get("resourceVersionMatch"); m {
	case "", "NotOlderThan":
	case "Exact":
		if lq.resourceVersion == "" || lq.resourceVersion == "0" || lq.watch {
			return nil, errorf(http.StatusBadRequest, api.ReasonBadRequest, "resourceVersionMatch=Exact needs a list with a resourceVersion other than 0")
		}
		lq.resourceVersionExac = true
	default:
		return nil, errorf(http.StatusBadRequest, api.ReasonBadRequest, "resourceVersionMatch %q: want NotOlderThan or Exact", m)
	}
	if v := q.Get("timeoutSeconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, errorf(http.StatusBadRequest, api.ReasonBadRequest, "timeoutSeconds %q: want a number of seconds", v)
		}
		lq.timeout = time.Duration(n) * time.Second
	}
	return lq, nil
}

// parseVersion reads a resourceVersion the hub handed out.
func parseVersion(v string) (uint64, error) {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, errorf(http.StatusBadRequest, api.ReasonBadRequest, "resourceVersion %q: not a version this hub handed out (a number)", v)
	}
	return n, nil
}

// continueToken is where the next page of a list starts: after key, in a
// list read first at version.
type continueToken struct {
	Version   uint64 `json:"rv"`
	Namespace string `json:"ns"`
	Name      string `json:"name"`
}

func (c continueToken) encode() string {
	b, _ := json.Marshal(c) // plain data always encodes
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseContinue(s string) (*continueToken, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	var c continueToken
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.Name == "" {
		return nil, errorf(http.StatusBadRequest, api.ReasonBadRequest, "continue %q: not a continue token this hub handed out", s)
	}
	return &c, nil
}

// fieldsOf are the fields of obj a field selector may name: the name and
// namespace of every object, and the ones Kubernetes offers for its kind.
func fieldsOf(obj api.Object) fields.Set {
	m := obj.GetObjectMeta()
	set := fields.Set{"metadata.name": m.Name, "metadata.namespace": m.Namespace}
	switch o := obj.(type) {
	case *api.Pod:
		set["spec.nodeName"] = o.Spec.NodeName
		set["spec.restartPolicy"] = string(o.Spec.RestartPolicy)
		set["spec.hostNetwork"] = strconv.FormatBool(o.Spec.HostNetwork)
		set["status.phase"] = string(o.Status.Phase)
		set["status.podIP"] = o.Status.PodIP
	case *api.Event:
		r := o.InvolvedObject
		set["involvedObject.kind"] = r.Kind
		set["involvedObject.namespace"] = r.Namespace
		set["involvedObject.name"] = r.Name
		set["involvedObject.uid"] = r.UID
		set["involvedObject.fieldPath"] = r.FieldPath
		set["reason"] = o.Reason
		set["source"] = o.Source.Component
		set["type"] = string(o.Type)
	case *api.Node:
		set["spec.unschedulable"] = strconv.FormatBool(o.Spec.Unschedulable)
	case *api.Namespace:
		set["status.phase"] = o.Status.Phase
	case *api.Secret:
		set["type"] = o.Type
	case *api.Service:
		set["spec.clusterIP"] = o.Spec.ClusterIP
		set["spec.type"] = string(o.Spec.Type)
	case *api.CertificateSigningRequest:
		set["spec.signerName"] = o.Spec.SignerName
	}
	return set
}

// parseFieldSelector reads a field selector (field=value, field==value,
// field!=value, joined by commas) and refuses a field kind does not
// offer, as Kubernetes does.
func parseFieldSelector(s string, k api.KindInfo) (fields.Selector, error) {
	if s == "" {
		return fields.Everything(), nil
	}
	sel, err := fields.ParseSelector(s)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, api.ReasonBadRequest, "fieldSelector %q: %v", s, err)
	}
	offered := fieldsOf(k.NewObject())
	for _, r := range sel.Requirements() {
		if _, ok := offered[r.Field]; !ok {
			return nil, errorf(http.StatusBadRequest, api.ReasonBadRequest, "field label not supported: %s (%s offer %s)",
				r.Field, k.Resource, strings.Join(sortedFieldNames(offered), ", "))
		}
	}
	return sel, nil
}

func sortedFieldNames(set fields.Set) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// matches reports whether obj passes the query's selectors.
func (q *listQuery) matches(obj api.Object) bool {
	if !q.labels.Matches(obj.GetObjectMeta().Labels) {
		return false
	}
	return q.fields.Empty() || q.fields.Matches(fieldsOf(obj))
}

// responseFormat is what a read answers with: JSON objects, or a Table.
type responseFormat struct {
	table bool
	// tableAPIVersion is meta.k8s.io/v1 or meta.k8s.io/v1beta1.
	tableAPIVersion string
	// includeObject is what each row carries: None, Metadata (the
	// default) or Object.
	includeObject string
}

// negotiate picks the answer to Accept, as Kubernetes does: the first
// acceptable clause, a Table when one asks for it, else JSON; 406 when
// nothing offered can be served.
func negotiate(r *http.Request) (responseFormat, error) {
	accept := r.Header.Get("Accept")
	if accept == "" {
		return responseFormat{}, nil
	}
	for _, c := range goautoneg.ParseAccept(accept) {
		if as := c.Params["as"]; as != "" {
			if c.Type == "application" && c.SubType == "json" && as == "Table" && c.Params["g"] == "meta.k8s.io" &&
				(c.Params["v"] == "v1" || c.Params["v"] == "v1beta1") {
				f := responseFormat{table: true, tableAPIVersion: "meta.k8s.io/" + c.Params["v"], includeObject: "Metadata"}
				switch inc := r.URL.Query().Get("includeObject"); inc {
				case "":
				case "None", "Metadata", "Object":
					f.includeObject = inc
				default:
					return f, errorf(http.StatusBadRequest, api.ReasonBadRequest, "includeObject %q: want None, Metadata or Object", inc)
				}
				return f, nil
			}
			continue
		}
		if acceptsJSON(c) {
			return responseFormat{}, nil
		}
	}
	return responseFormat{}, notAcceptable(accept)
}

// listed is one object of a list: the object (shared: never modified)
// and its JSON as served.
type listed struct {
	obj api.Object
	raw json.RawMessage
}

// list serves a list (or, with ?watch=1, a watch) of t's kind.
func (s *Server) list(w http.ResponseWriter, r *http.Request, t target) error {
	q, err := parseListQuery(r.URL.Query(), t.kind)
	if err != nil {
		return err
	}
	format, err := negotiate(r)
	if err != nil {
		return err
	}
	if q.watch {
		return s.watch(w, r, t, q, format)
	}
	// The version first: the View after it sees every commit up to it.
	version := s.store.Version()
	if err := s.checkListVersion(q, version); err != nil {
		return err
	}
	var recs []store.Record
	var nj nodeJoin
	err = s.store.View(func(tx store.Tx) error {
		var err error
		if recs, err = tx.List(t.kind.Kind, t.namespace); err != nil {
			return err
		}
		if t.kind.Kind == api.KindNode {
			nj, err = readNodeJoin(tx)
		}
		return err
	})
	if err != nil {
		return err
	}
	listVersion := version
	start := 0
	if q.cont != nil {
		// A later page goes on after the last object of the one before, in
		// the objects as they are now; it says the first page's version,
		// from which a watch replays everything that changed since.
		listVersion = q.cont.Version
		start, _ = slices.BinarySearchFunc(recs, store.Key{Namespace: q.cont.Namespace, Name: q.cont.Name}, func(r store.Record, k store.Key) int {
			return compareNames(r.Key, k)
		})
		if start < len(recs) && recs[start].Key.Namespace == q.cont.Namespace && recs[start].Key.Name == q.cont.Name {
			start++
		}
	}
	var items []listed
	next := ""
	filtered := !q.labels.Empty() || !q.fields.Empty()
	for i := start; i < len(recs); i++ {
		rec := recs[i]
		obj, err := store.DecodeShared(rec, t.kind.NewObject())
		if err != nil {
			return err
		}
		if !q.matches(obj) {
			continue
		}
		if q.limit > 0 && len(items) == q.limit {
			last := items[len(items)-1].obj.GetObjectMeta()
			next = continueToken{Version: listVersion, Namespace: last.Namespace, Name: last.Name}.encode()
			break
		}
		item := listed{obj: obj, raw: rec.Value}
		if n, isNode := obj.(*api.Node); isNode {
			if item.obj, item.raw, err = s.servedNode(n, nj); err != nil {
				return err
			}
		}
		items = append(items, item)
	}
	meta := metav1.ListMeta{ResourceVersion: strconv.FormatUint(listVersion, 10), Continue: next}
	if next != "" && !filtered {
		remaining := int64(len(recs) - start - len(items))
		meta.RemainingItemCount = &remaining
	}
	if format.table {
		return writeTable(w, t.kind, format, meta, items, s.now())
	}
	writeObjectList(w, t.kind, meta, items)
	return nil
}

// compareNames orders keys of one kind as List does.
func compareNames(a, b store.Key) int {
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// checkListVersion refuses a list at a version the hub cannot serve: an
// exact past version (the store keeps no history), a version from its
// future, or a continue token from before the oldest change the watch
// cache holds (a watch from its version would miss changes).
func (s *Server) checkListVersion(q *listQuery, current uint64) error {
	if q.cont != nil {
		if oldest, ok := s.watches.oldest(); ok && q.cont.Version < oldest {
			return errorf(http.StatusGone, ReasonExpired, "the continue token is from version %d; the hub keeps changes since %d only: list again from the start", q.cont.Version, oldest)
		}
		return nil
	}
	if q.resourceVersion == "" || q.resourceVersion == "0" {
		return nil
	}
	v, err := parseVersion(q.resourceVersion)
	if err != nil {
		return err
	}
	switch {
	case v > current:
		return errorf(http.StatusGone, ReasonExpired, "resource version %d is newer than the hub's %d: list again without one", v, current)
	case q.resourceVersionExac && v != current:
		return errorf(http.StatusGone, ReasonExpired, "the hub lists at its current version (%d) only, not at %d", current, v)
	}
	return nil
}

// servedNode is a node as the API serves it: with what the hub keeps
// apart from the Node (its lease, its snapshot record, its metrics).
func (s *Server) servedNode(n *api.Node, nj nodeJoin) (api.Object, json.RawMessage, error) {
	// What the joins set are fields of the status struct: a shallow copy
	// keeps the shared node as it is.
	served := *n
	nj.join(&served)
	s.joinMetrics(&served)
	b, err := json.Marshal(&served)
	return &served, b, err
}

// nodeJoinOf reads what the API joins into one node.
func nodeJoinOf(tx store.Tx, name string) (nodeJoin, error) {
	nj := nodeJoin{snaps: map[string]*desired.Record{}, leases: map[string]*lease.Lease{}}
	snap, err := store.GetShared[desired.Record](tx, "", name)
	if err == nil {
		nj.snaps[name] = snap
	} else if !store.IsNotFound(err) {
		return nj, err
	}
	l, err := store.GetShared[lease.Lease](tx, "", name)
	if err == nil {
		nj.leases[name] = l
	} else if !store.IsNotFound(err) {
		return nj, err
	}
	return nj, nil
}

// writeObjectList writes a list whose items are JSON already.
// encoding/json would check and compact every item again, which for
// 10,000 nodes is most of the list's cost.
func writeObjectList(w http.ResponseWriter, k api.KindInfo, meta metav1.ListMeta, items []listed) {
	head := struct {
		APIVersion string          `json:"apiVersion"`
		Kind       string          `json:"kind"`
		Metadata   metav1.ListMeta `json:"metadata"`
		Items      []int           `json:"items"`
	}{k.APIVersion, k.Kind + "List", meta, []int{}}
	empty, err := json.Marshal(head)
	if err != nil {
		panic("apiserver: list head does not encode: " + err.Error()) // plain data always encodes
	}
	open, ok := bytes.CutSuffix(empty, []byte("[]}"))
	if !ok {
		panic("apiserver: list head ends in " + string(empty[max(0, len(empty)-8):]))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(open)
	bw.WriteByte('[')
	for i, item := range items {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.Write(item.raw)
	}
	bw.WriteString("]}\n")
	_ = bw.Flush()
}

// get serves one object.
func (s *Server) get(w http.ResponseWriter, r *http.Request, t target) error {
	format, err := negotiate(r)
	if err != nil {
		return err
	}
	var item listed
	err = s.store.View(func(tx store.Tx) error {
		rec, err := tx.Get(store.Key{Kind: t.kind.Kind, Namespace: t.namespace, Name: t.name})
		if store.IsNotFound(err) {
			return notFound(t.kind, t.name)
		}
		if err != nil {
			return err
		}
		obj, err := store.DecodeShared(rec, t.kind.NewObject())
		if err != nil {
			return err
		}
		item = listed{obj: obj, raw: rec.Value}
		if n, ok := obj.(*api.Node); ok {
			nj, err := nodeJoinOf(tx, n.Name)
			if err != nil {
				return err
			}
			item.obj, item.raw, err = s.servedNode(n, nj)
		}
		return err
	})
	if err != nil {
		return err
	}
	if format.table {
		meta := metav1.ListMeta{ResourceVersion: item.obj.GetObjectMeta().ResourceVersion}
		return writeTable(w, t.kind, format, meta, []listed{item}, s.now())
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(item.raw, '\n'))
	return nil
}

// tableColumns are the column definitions of kind's Table.
func tableColumns(k api.KindInfo) []metav1.TableColumnDefinition {
	var out []metav1.TableColumnDefinition
	for _, c := range printer.KubeColumns(k.Kind) {
		out = append(out, metav1.TableColumnDefinition{
			Name: c.Name, Type: c.Type, Format: c.Format, Description: c.Description, Priority: c.Priority,
		})
	}
	return out
}

// tableRow is item's row: its cells, the pod conditions Kubernetes marks
// a finished pod with, and the object as includeObject asks.
func tableRow(format responseFormat, item listed, now time.Time) (metav1.TableRow, error) {
	row := metav1.TableRow{Cells: printer.KubeCells(item.obj, now)}
	if p, ok := item.obj.(*api.Pod); ok {
		switch p.Status.Phase {
		case api.PodSucceeded:
			row.Conditions = []metav1.TableRowCondition{{Type: metav1.RowCompleted, Status: metav1.ConditionTrue, Reason: string(p.Status.Phase), Message: "The pod has completed successfully."}}
		case api.PodFailed:
			row.Conditions = []metav1.TableRowCondition{{Type: metav1.RowCompleted, Status: metav1.ConditionTrue, Reason: string(p.Status.Phase), Message: "The pod failed."}}
		}
	}
	switch format.includeObject {
	case "Object":
		row.Object = runtime.RawExtension{Raw: item.raw}
	case "Metadata":
		b, err := partialMetadata(format.tableAPIVersion, item.obj)
		if err != nil {
			return row, err
		}
		row.Object = runtime.RawExtension{Raw: b}
	}
	return row, nil
}

// newTable builds the Table of items: the kind's columns (when headers),
// one row each.
func newTable(k api.KindInfo, format responseFormat, meta metav1.ListMeta, items []listed, now time.Time, headers bool) (*metav1.Table, error) {
	t := &metav1.Table{
		TypeMeta: metav1.TypeMeta{APIVersion: format.tableAPIVersion, Kind: "Table"},
		ListMeta: meta,
		Rows:     make([]metav1.TableRow, 0, len(items)),
	}
	if headers {
		t.ColumnDefinitions = tableColumns(k)
	}
	for _, item := range items {
		row, err := tableRow(format, item, now)
		if err != nil {
			return nil, err
		}
		t.Rows = append(t.Rows, row)
	}
	return t, nil
}

// partialMetadata is obj as a PartialObjectMetadata: its metadata only,
// what kubectl reads of a row (namespace, labels).
func partialMetadata(apiVersion string, obj api.Object) ([]byte, error) {
	return json.Marshal(struct {
		APIVersion string          `json:"apiVersion"`
		Kind       string          `json:"kind"`
		Metadata   *api.ObjectMeta `json:"metadata"`
	}{apiVersion, "PartialObjectMetadata", obj.GetObjectMeta()})
}

// writeTable writes the Table of items, row by row: encoding/json would
// check every row's object again, most of a large table's cost.
func writeTable(w http.ResponseWriter, k api.KindInfo, format responseFormat, meta metav1.ListMeta, items []listed, now time.Time) error {
	empty, err := json.Marshal(&metav1.Table{
		TypeMeta:          metav1.TypeMeta{APIVersion: format.tableAPIVersion, Kind: "Table"},
		ListMeta:          meta,
		ColumnDefinitions: tableColumns(k),
		Rows:              []metav1.TableRow{},
	})
	if err != nil {
		return fmt.Errorf("encode %s table: %w", k.Resource, err)
	}
	open, ok := bytes.CutSuffix(empty, []byte("[]}"))
	if !ok {
		return fmt.Errorf("encode %s table: it ends in %q", k.Resource, empty[max(0, len(empty)-8):])
	}
	rows := make([][]byte, 0, len(items))
	for _, item := range items {
		row, err := tableRow(format, item, now)
		if err != nil {
			return err
		}
		b, err := encodeRow(row)
		if err != nil {
			return fmt.Errorf("encode %s table: %w", k.Resource, err)
		}
		rows = append(rows, b)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(open)
	bw.WriteByte('[')
	for i, b := range rows {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.Write(b)
	}
	bw.WriteString("]}\n")
	return bw.Flush()
}

// encodeRow is row's JSON, its object written as it is.
func encodeRow(row metav1.TableRow) ([]byte, error) {
	cells, err := json.Marshal(row.Cells)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(cells)+len(row.Object.Raw)+32)
	b = append(b, `{"cells":`...)
	b = append(b, cells...)
	if len(row.Conditions) > 0 {
		conds, err := json.Marshal(row.Conditions)
		if err != nil {
			return nil, err
		}
		b = append(b, `,"conditions":`...)
		b = append(b, conds...)
	}
	if len(row.Object.Raw) > 0 {
		b = append(b, `,"object":`...)
		b = append(b, row.Object.Raw...)
	}
	return append(b, '}'), nil
}
