package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// TestApplyNamesTheFileOfAHubProblem: a problem only the hub can find is
// reported at the file, document and field it came from.
func TestApplyNamesTheFileOfAHubProblem(t *testing.T) {
	isolate(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		const field = "items[1].spec.ports[0].nodePort"
		msg := "document 1: " + field + ": 30080/TCP is already allocated to Service default/web"
		_ = json.NewEncoder(w).Encode(api.Status{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: api.StatusFailure,
			Message: msg, Reason: api.ReasonInvalid, Code: 422, Details: &api.StatusDetails{Causes: []api.StatusCause{{Field: field, Message: msg}}}})
	}))
	defer srv.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "web.yaml")
	body := "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n---\n" +
		"apiVersion: v1\nkind: Service\nmetadata: {name: other}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 30080}]}\n"
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := run(NewRootCommand(BuildInfo{}), "apply", "-f", file, "--server", srv.URL)
	if want := file + ": document 2: spec.ports[0].nodePort: 30080/TCP is already allocated to Service default/web"; err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}
