package rollout

import (
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func template(image string) *api.PodTemplateSpec {
	return &api.PodTemplateSpec{
		ObjectMeta: api.ObjectMeta{Labels: map[string]string{"app": "x"}},
		Spec:       api.PodSpec{Containers: []api.Container{{Name: "c", Image: image}}},
	}
}

var owner = Owner{APIVersion: "apps/v1", Kind: api.KindDaemonSet, Namespace: "default", Name: "x", UID: "uid-x",
	Annotations: map[string]string{AnnotationChangeCause: "set image v1"}}

// step runs SyncHistory for one template and applies its result.
func step(t *testing.T, revs []*api.ControllerRevision, image string, live map[string]bool, keep int64, limit int) ([]*api.ControllerRevision, History) {
	t.Helper()
	tpl := template(image)
	h := SyncHistory(HistoryInput{Owner: owner, Template: tpl, Hash: api.HashTemplate(tpl), Revisions: revs, Live: live, Keep: keep, Limit: limit})
	byName := map[string]*api.ControllerRevision{}
	for _, r := range revs {
		byName[r.Name] = r
	}
	for _, r := range h.Create {
		byName[r.Name] = r
	}
	for _, r := range h.Update {
		byName[r.Name] = r
	}
	for _, r := range h.Delete {
		delete(byName, r.Name)
	}
	var out []*api.ControllerRevision
	for _, r := range byName {
		out = append(out, r)
	}
	return out, h
}

func TestSyncHistory(t *testing.T) {
	var revs []*api.ControllerRevision
	var h History
	revs, h = step(t, revs, "v1", nil, 0, 10)
	c := h.Current
	if len(h.Create) != 1 || c.Revision != 1 || c.Name != RevisionName("x", api.HashTemplate(template("v1"))) ||
		!c.IsControlledBy("uid-x") || c.Labels[LabelRevisionHash] == "" || c.Annotations[AnnotationChangeCause] != "set image v1" ||
		c.Data.Spec.Containers[0].Image != "v1" {
		t.Fatalf("first revision = %+v", h)
	}
	// The same template again changes nothing.
	revs, h = step(t, revs, "v1", nil, 0, 10)
	if len(h.Create)+len(h.Update)+len(h.Delete) != 0 || h.Current.Revision != 1 {
		t.Fatalf("idle sync = %+v", h)
	}
	revs, h = step(t, revs, "v2", nil, 0, 10)
	if h.Current.Revision != 2 {
		t.Fatalf("v2 = %+v", h.Current)
	}
	// Back to v1: its revision is reused with the next number.
	revs, h = step(t, revs, "v1", nil, 0, 10)
	if len(h.Create) != 0 || len(h.Update) != 1 || h.Current.Revision != 3 || h.Renumbered[1] != 3 {
		t.Fatalf("reuse = %+v", h)
	}
	if len(revs) != 2 {
		t.Fatalf("revisions = %d", len(revs))
	}
}

func TestSyncHistoryTrims(t *testing.T) {
	var revs []*api.ControllerRevision
	for i := 1; i <= 6; i++ {
		revs, _ = step(t, revs, "v"+string(rune('0'+i)), nil, 0, 100)
	}
	// Limit 2 keeps the current (v6), the two newest old ones (v4, v5),
	// the kept revision 1 and the live v2.
	live := map[string]bool{api.HashTemplate(template("v2")): true}
	revs, h := step(t, revs, "v6", live, 1, 2)
	if len(h.Delete) != 1 || h.Delete[0].Revision != 3 {
		t.Fatalf("deleted = %+v", h.Delete)
	}
	if len(revs) != 5 {
		t.Fatalf("kept %d", len(revs))
	}
	// Limit 0 keeps only the current, live and kept ones.
	_, h = step(t, revs, "v6", nil, 0, 0)
	if len(h.Delete) != 4 {
		t.Fatalf("deleted %d", len(h.Delete))
	}
}
