package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/manifest"
)

// readme returns the README's paragraphs (text between blank lines).
func readme(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return regexp.MustCompile(`\n\s*\n`).Split(string(b), -1)
}

// The hub serves /metrics on its API listener: HTTPS on 8443 behind the
// admin token by default, plain HTTP on 127.0.0.1:8080 only with
// --insecure. A README that sends Prometheus to http://HUB:8080 on a
// default hub points it at nothing (issue 13, item 13).
func TestReadmeMetricsURLIsTheHubs(t *testing.T) {
	url := regexp.MustCompile(`(https?)://[A-Za-z0-9.\-]+:(\d+)/metrics`)
	found := 0
	for _, p := range readme(t) {
		for _, m := range url.FindAllStringSubmatch(p, -1) {
			found++
			switch {
			case m[1] == "https" && (m[2] != "8443" || !strings.Contains(p, "token")):
				t.Errorf("%s: the TLS hub serves /metrics on 8443, with the admin token, which the paragraph must say:\n%s", m[0], p)
			case m[1] == "http" && (m[2] != "8080" || !strings.Contains(p, "--insecure")):
				t.Errorf("%s: only a hub run with --insecure serves plain HTTP (on 127.0.0.1:8080), which the paragraph must say:\n%s", m[0], p)
			}
		}
	}
	if found == 0 {
		t.Error("the README does not say where Prometheus scrapes the hub")
	}
}

// An example whose pods need node labels says so where the README names
// it: without them its DaemonSet runs nowhere, silently (issue 13, item
// 13).
func TestReadmeNamesTheLabelsTheExamplesNeed(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "..", "manifests", "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("examples: %v %v", files, err)
	}
	paragraphs := readme(t)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := manifest.Decode(filepath.Base(f), data)
		if err != nil {
			t.Fatal(err)
		}
		var labels []string
		for _, d := range docs {
			var sel map[string]string
			switch o := d.Object.(type) {
			case *api.DaemonSet:
				sel = o.Spec.Template.Spec.NodeSelector
			case *api.Deployment:
				sel = o.Spec.Template.Spec.NodeSelector
			}
			for k, v := range sel {
				labels = append(labels, fmt.Sprintf("%s=%s", k, v))
			}
		}
		sort.Strings(labels)
		name := filepath.Base(f)
		named, told := false, false
		for _, p := range paragraphs {
			if !strings.Contains(p, name) {
				continue
			}
			named = true
			all := true
			for _, l := range labels {
				all = all && strings.Contains(p, l)
			}
			told = told || all
		}
		if !named {
			t.Errorf("the README does not name %s", name)
		} else if !told {
			t.Errorf("no paragraph of the README that names %s says its pods need nodes labelled %s", name, strings.Join(labels, ", "))
		}
	}
}
