// Command binsize shows what the edge agent's size is made of: it builds
// the agent for a target with symbols and sums the sizes of the symbols
// that take room in the file (text and data, not BSS) per package, with
// third-party packages folded to their repository, largest first. It
// builds as arm/cross.sh does, with the same build tags.
//
//	go run ./arm/binsize -target arm64 -top 20
package main

import (
	"debug/elf"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	target := flag.String("target", "arm64", "amd64, arm64, armv7 or armv6")
	top := flag.Int("top", 20, "how many packages to list")
	tags := flag.String("tags", "grpcnotrace", "build tags, as arm/cross.sh's TAGS")
	flag.Parse()
	if err := run(*target, *top, *tags); err != nil {
		fmt.Fprintln(os.Stderr, "binsize:", err)
		os.Exit(1)
	}
}

func run(target string, top int, tags string) error {
	env := map[string][]string{
		"amd64": {"GOARCH=amd64"}, "arm64": {"GOARCH=arm64"},
		"armv7": {"GOARCH=arm", "GOARM=7"}, "armv6": {"GOARCH=arm", "GOARM=6"},
	}[target]
	if env == nil {
		return fmt.Errorf("unknown target %q", target)
	}
	dir, err := os.MkdirTemp("", "binsize-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	withSyms, stripped := filepath.Join(dir, "edge-agent"), filepath.Join(dir, "edge-agent-stripped")
	for out, ldflags := range map[string]string{withSyms: "", stripped: "-s -w"} {
		cmd := exec.Command("go", "build", "-trimpath", "-tags", tags, "-ldflags", ldflags, "-o", out, "./edge-agent/cmd/edge-agent")
		cmd.Env = append(append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux"), env...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %w\n%s", err, b)
		}
	}
	fiS, err := os.Stat(stripped)
	if err != nil {
		return err
	}
	f, err := elf.Open(withSyms)
	if err != nil {
		return err
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return err
	}
	sums := map[string]uint64{}
	var total uint64
	for _, s := range syms {
		if int(s.Section) <= 0 || int(s.Section) >= len(f.Sections) || f.Sections[s.Section].Type != elf.SHT_PROGBITS {
			continue // undefined, absolute, or BSS: no room in the file
		}
		sums[pkgOf(s.Name)] += s.Size
		total += s.Size
	}
	type row struct {
		pkg  string
		size uint64
	}
	var rows []row
	for k, v := range sums {
		rows = append(rows, row{k, v})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].size > rows[j].size })
	fmt.Printf("edge-agent linux/%s: %d KiB stripped; %d KiB in sized symbols (the rest is pclntab and headers)\n",
		target, fiS.Size()>>10, total>>10)
	for i, r := range rows {
		if i == top {
			break
		}
		fmt.Printf("%8d KiB  %5.1f%%  %s\n", r.size>>10, 100*float64(r.size)/float64(total), r.pkg)
	}
	return nil
}

// pkgOf names a symbol's package: "github.com/a/b/c.(*T).M" is
// github.com/a/b, "crypto/tls.x" is std crypto, runtime tables are
// "runtime (tables)".
func pkgOf(name string) string {
	switch {
	case strings.HasPrefix(name, "go:func.") || strings.HasPrefix(name, "runtime.") && strings.Contains(name, "tab"):
		return "runtime (tables)"
	case strings.HasPrefix(name, "go:string.") || strings.HasPrefix(name, "go:"):
		return "strings and constants"
	}
	name = strings.TrimPrefix(strings.TrimPrefix(name, "type:"), "*")
	slash := strings.LastIndex(name, "/")
	dot := strings.Index(name[slash+1:], ".")
	pkg := name
	if dot >= 0 {
		pkg = name[:slash+1+dot]
	}
	parts := strings.Split(pkg, "/")
	if !strings.Contains(parts[0], ".") {
		return "std " + parts[0]
	}
	keep := 2 // google.golang.org/grpc, go.yaml.in/yaml
	if parts[0] == "github.com" || parts[0] == "golang.org" {
		keep = 3 // github.com/owner/repo, golang.org/x/net
	}
	if len(parts) > keep {
		parts = parts[:keep]
	}
	return strings.Join(parts, "/")
}
