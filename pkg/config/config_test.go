package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func flags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.String("node-name", "default-name", "")
	fs.String("broker", "tcp://default", "")
	fs.StringSlice("label", nil, "")
	return fs
}

func TestPrecedenceFlagEnvFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("node-name: from-file\nbroker: tcp://file\nlabel: [a=1]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FLOTILLA_BROKER", "tcp://env")
	t.Setenv("FLOTILLA_LABEL", "b=2,c=3")
	fs := flags()
	if err := fs.Parse([]string{"--node-name", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	v, err := Load(fs, file)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.GetString("node-name"); got != "from-flag" {
		t.Errorf("node-name = %s, want the flag", got)
	}
	if got := v.GetString("broker"); got != "tcp://env" {
		t.Errorf("broker = %s, want the environment", got)
	}
	if got := strings.Join(StringList(v, "label"), " "); got != "b=2 c=3" {
		t.Errorf("labels = %s, want the environment's, split on commas", got)
	}
}

func TestUnknownFileKeyIsAnError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("node-nmae: typo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(flags(), file); err == nil || !strings.Contains(err.Error(), `unknown setting "node-nmae"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestLabels(t *testing.T) {
	m, err := Labels([]string{"a=1", "b="})
	if err != nil || m["a"] != "1" || m["b"] != "" {
		t.Fatalf("%v %v", m, err)
	}
	if _, err := Labels([]string{"nokey"}); err == nil {
		t.Fatal("accepted a label without =")
	}
}

func TestGiven(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("node-name: from-file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fs := flags()
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	v, err := Load(fs, file)
	if err != nil {
		t.Fatal(err)
	}
	if !Given(v, fs, "node-name") {
		t.Error("node-name from the file: not given")
	}
	if Given(v, fs, "broker") {
		t.Error("broker at its default: given")
	}
	t.Setenv("FLOTILLA_BROKER", "tcp://env")
	if !Given(v, fs, "broker") {
		t.Error("broker from the environment: not given")
	}
	fs2 := flags()
	if err := fs2.Parse([]string{"--label", "a=b"}); err != nil {
		t.Fatal(err)
	}
	v2, err := Load(fs2, "")
	if err != nil {
		t.Fatal(err)
	}
	if !Given(v2, fs2, "label") {
		t.Error("label from a flag: not given")
	}
}
