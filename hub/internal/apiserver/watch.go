package apiserver

// The watch a Kubernetes client makes with ?watch=1: a stream of
// WatchEvents ({"type": "ADDED", "object": {...}}, one JSON object a
// line), the objects as JSON or, for kubectl get -w, as one-row Tables.
//
// resourceVersion says where it starts: unset or "0" sends every object
// that exists (ADDED) and then the changes; a version sends the changes
// after it, or, when the hub no longer holds them all, one ERROR event
// with a 410 Expired Status, as Kubernetes does, and the client lists
// again. sendInitialEvents=true sends the objects first too, then a
// BOOKMARK marking their end. allowWatchBookmarks=true adds a BOOKMARK
// with the newest version every bookmark interval. An object that stops
// (or starts) matching the selectors is sent as DELETED (or ADDED).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// watchWriteTimeout bounds the write of one batch of events: a client
// that reads nothing for that long is let go.
const watchWriteTimeout = 30 * time.Second

// Watch event types.
const (
	eventAdded    = "ADDED"
	eventModified = "MODIFIED"
	eventDeleted  = "DELETED"
	eventBookmark = "BOOKMARK"
	eventError    = "ERROR"
)

// initialEventsEnd marks the bookmark after the initial events.
const initialEventsEnd = "k8s.io/initial-events-end"

func (s *Server) watch(w http.ResponseWriter, r *http.Request, t target, q *listQuery, format responseFormat) error {
	ctx := r.Context()
	if q.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, q.timeout)
		defer cancel()
	}
	initial := q.sendInitialEvents || q.resourceVersion == "" || q.resourceVersion == "0"
	var since uint64
	if initial {
		since = s.store.Version()
	} else {
		v, err := parseVersion(q.resourceVersion)
		if err != nil {
			return err
		}
		if cur := s.store.Version(); v > cur {
			return errorf(http.StatusGone, ReasonExpired, "resource version %d is newer than the hub's %d: list again", v, cur)
		}
		since = v
	}
	sub, err := s.watches.subscribe(ctx, t.kind.Kind, t.namespace, since)
	var tooOld errTooOld
	if errors.As(err, &tooOld) {
		// As Kubernetes answers it: the stream starts, with one ERROR.
		ww := newWatchWriter(w, t.kind, format, s.now)
		ww.status(errorf(http.StatusGone, ReasonExpired, "%v", tooOld))
		return nil
	}
	if err != nil {
		return err
	}
	defer s.watches.unsubscribe(sub)
	ww := newWatchWriter(w, t.kind, format, s.now)
	ww.flush()
	if initial {
		if err := s.initialEvents(ww, t, q, since); err != nil {
			ww.status(err)
			return nil
		}
		if q.sendInitialEvents {
			ww.bookmark(since, true)
		}
		ww.flush()
	}
	var tick <-chan time.Time
	if q.bookmarks {
		ticker := time.NewTicker(s.bookmarkInterval)
		defer ticker.Stop()
		tick = ticker.C
	}
	sent := since
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			s.watches.bookmark(sub)
		case item, ok := <-sub.ch:
			if !ok {
				// The cache ended the watch (the hub stops, or the
				// watcher fell behind): the client watches again from the
				// last version it got.
				return nil
			}
			switch {
			case item.change == nil:
				if item.bookmark > sent && q.bookmarks {
					ww.bookmark(item.bookmark, false)
					sent = item.bookmark
				}
			default:
				ok, err := s.sendChange(ww, q, item.change)
				if err != nil {
					ww.status(err)
					return nil
				}
				if ok {
					sent = item.change.version
				}
			}
			if len(sub.ch) == 0 && !ww.flush() {
				return nil
			}
		}
	}
}

// initialEvents sends every object of t that matches q, as the store
// holds it at version since or later, as ADDED.
func (s *Server) initialEvents(ww *watchWriter, t target, q *listQuery, since uint64) error {
	return s.store.View(func(tx store.Tx) error {
		recs, err := tx.List(t.kind.Kind, t.namespace)
		if err != nil {
			return err
		}
		var nj nodeJoin
		if t.kind.Kind == api.KindNode {
			if nj, err = readNodeJoin(tx); err != nil {
				return err
			}
		}
		for _, rec := range recs {
			obj, err := store.DecodeShared(rec, t.kind.NewObject())
			if err != nil {
				return err
			}
			if !q.matches(obj) {
				continue
			}
			item := listed{obj: obj, raw: rec.Value}
			if n, ok := obj.(*api.Node); ok {
				if item.obj, item.raw, err = s.servedNode(n, nj); err != nil {
					return err
				}
			}
			if !ww.event(eventAdded, item) {
				return errClientGone
			}
		}
		return nil
	})
}

var errClientGone = errors.New("the watcher went away")

// sendChange sends one change as the event a watcher with q's selectors
// sees, if any, and reports whether it sent one.
func (s *Server) sendChange(ww *watchWriter, q *listQuery, ch *change) (bool, error) {
	typ, item, ok, err := s.eventOf(q, ch)
	if err != nil || !ok {
		return false, err
	}
	if !ww.event(typ, item) {
		return false, errClientGone
	}
	return true, nil
}

// eventOf is the event ch makes for a watcher with q's selectors: a
// put of an object that matches is ADDED (new, or new to the watcher)
// or MODIFIED; one that stopped matching, and a delete of one that
// matched, DELETED.
func (s *Server) eventOf(q *listQuery, ch *change) (typ string, item listed, ok bool, err error) {
	if ch.kind.Kind == api.KindSecret && ch.typ == store.Put {
		return s.secretEventOf(q, ch)
	}
	obj, prev, err := ch.objects()
	if err != nil {
		return "", listed{}, false, err
	}
	switch {
	case ch.typ == store.Deleted:
		if !q.matches(obj) {
			return "", listed{}, false, nil
		}
		// The object as it was, at the version of its deletion.
		item, err := withVersion(obj, ch.version)
		return eventDeleted, item, err == nil, err
	case q.matches(obj):
		typ = eventAdded
		if prev != nil && q.matches(prev) {
			typ = eventModified
		}
		item := listed{obj: obj, raw: ch.value}
		if n, isNode := obj.(*api.Node); isNode {
			if item, err = s.servedChangedNode(n); err != nil {
				return "", listed{}, false, err
			}
		}
		return typ, item, true, nil
	case prev != nil && q.matches(prev):
		item, err := withVersion(prev, ch.version)
		return eventDeleted, item, err == nil, err
	}
	return "", listed{}, false, nil
}

// secretEventOf reads a changed Secret from the store, which is the only
// place it is kept in the clear: a Secret changed again since is sent
// when that change comes.
func (s *Server) secretEventOf(q *listQuery, ch *change) (string, listed, bool, error) {
	var item listed
	err := s.store.View(func(tx store.Tx) error {
		rec, err := tx.Get(ch.key)
		if store.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if rec.Version != ch.version {
			return nil
		}
		obj := ch.kind.NewObject()
		if err := json.Unmarshal(rec.Value, obj); err != nil {
			return fmt.Errorf("decode %s: %w", rec.Key, err)
		}
		item = listed{obj: obj, raw: rec.Value}
		return nil
	})
	if err != nil || item.obj == nil || !q.matches(item.obj) {
		return "", listed{}, false, err
	}
	return eventModified, item, true, nil
}

// servedChangedNode is a changed node with what the API joins into it.
func (s *Server) servedChangedNode(n *api.Node) (listed, error) {
	var item listed
	err := s.store.View(func(tx store.Tx) error {
		nj, err := nodeJoinOf(tx, n.Name)
		if err != nil {
			return err
		}
		item.obj, item.raw, err = s.servedNode(n, nj)
		return err
	})
	return item, err
}

// withVersion is a copy of obj with its resourceVersion set to version,
// which a DELETED event carries (a watcher's version moves on with it).
func withVersion(obj api.Object, version uint64) (listed, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return listed{}, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return listed{}, err
	}
	var meta map[string]json.RawMessage
	if err := json.Unmarshal(raw["metadata"], &meta); err != nil {
		return listed{}, err
	}
	meta["resourceVersion"], _ = json.Marshal(strconv.FormatUint(version, 10))
	if raw["metadata"], err = json.Marshal(meta); err != nil {
		return listed{}, err
	}
	if b, err = json.Marshal(raw); err != nil {
		return listed{}, err
	}
	return listed{obj: obj, raw: b}, nil
}

// watchWriter writes a watch's events to the client, each object as JSON
// or as a one-row Table (column definitions in the first only).
type watchWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	bw      *bufio.Writer
	kind    api.KindInfo
	format  responseFormat
	now     func() time.Time
	headers bool // the next Table carries the column definitions
	failed  bool
}

func newWatchWriter(w http.ResponseWriter, k api.KindInfo, format responseFormat, now func() time.Time) *watchWriter {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache, private")
	w.WriteHeader(http.StatusOK)
	return &watchWriter{w: w, rc: http.NewResponseController(w), bw: bufio.NewWriterSize(w, 32<<10),
		kind: k, format: format, now: now, headers: true}
}

// event writes one event; false once the client cannot be written to.
func (ww *watchWriter) event(typ string, item listed) bool {
	raw := []byte(item.raw)
	if ww.format.table {
		t, err := newTable(ww.kind, ww.format, metav1.ListMeta{ResourceVersion: item.obj.GetObjectMeta().ResourceVersion},
			[]listed{item}, ww.now(), ww.headers)
		if err == nil {
			raw, err = json.Marshal(t)
		}
		if err != nil {
			ww.status(err)
			return false
		}
		ww.headers = false
	}
	return ww.write(typ, raw)
}

// bookmark writes a BOOKMARK at version: an object with only its kind
// and resourceVersion (and, at the end of the initial events, the
// annotation that says so).
func (ww *watchWriter) bookmark(version uint64, endOfInitial bool) bool {
	meta := map[string]any{"resourceVersion": strconv.FormatUint(version, 10)}
	if endOfInitial {
		meta["annotations"] = map[string]string{initialEventsEnd: "true"}
	}
	apiVersion, kind := ww.kind.APIVersion, ww.kind.Kind
	if ww.format.table {
		apiVersion, kind = ww.format.tableAPIVersion, "Table"
	}
	b, _ := json.Marshal(map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": meta})
	return ww.write(eventBookmark, b)
}

// status writes an ERROR event with err as a Status: the watch ends.
func (ww *watchWriter) status(err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = errorf(http.StatusInternalServerError, api.ReasonInternalError, "%v", err)
	}
	b, _ := json.Marshal(api.Status{
		TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: "Status"},
		Status:   api.StatusFailure, Message: ae.msg, Reason: ae.reason, Code: ae.code,
	})
	ww.write(eventError, b)
	ww.flush()
}

func (ww *watchWriter) write(typ string, object []byte) bool {
	if ww.failed {
		return false
	}
	_ = ww.rc.SetWriteDeadline(time.Now().Add(watchWriteTimeout))
	ww.bw.WriteString(`{"type":"`)
	ww.bw.WriteString(typ)
	ww.bw.WriteString(`","object":`)
	ww.bw.Write(object)
	if _, err := ww.bw.WriteString("}\n"); err != nil {
		ww.failed = true
	}
	return !ww.failed
}

// flush sends what is written; false once the client is gone.
func (ww *watchWriter) flush() bool {
	if ww.failed {
		return false
	}
	_ = ww.rc.SetWriteDeadline(time.Now().Add(watchWriteTimeout))
	if err := ww.bw.Flush(); err != nil {
		ww.failed = true
		return false
	}
	if err := ww.rc.Flush(); err != nil {
		ww.failed = true
	}
	return !ww.failed
}
