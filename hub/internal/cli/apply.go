package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flotilla-edge/flotilla/hub/internal/client"
	"github.com/flotilla-edge/flotilla/hub/internal/printer"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/manifest"
)

// readManifests reads every file named by -f (files, directories of
// .yaml/.yml/.json files, or - for stdin) with manifest.Load: decoded,
// defaulted and validated, with apply's rules when opts.Apply is set. It
// returns every object, or every problem of every document of every file.
func readManifests(files []string, recursive bool, opts manifest.LoadOptions, stdin io.Reader) ([]manifest.Document, error) {
	if len(files) == 0 {
		return nil, errors.New("must specify -f FILE (a file, a directory, or - for stdin)")
	}
	var sources []string
	for _, f := range files {
		if f == "-" {
			sources = append(sources, f)
			continue
		}
		expanded, err := expand(f, recursive)
		if err != nil {
			return nil, err
		}
		sources = append(sources, expanded...)
	}
	var docs []manifest.Document
	var problems manifest.ErrorList
	for _, src := range sources {
		data, name, err := readSource(src, stdin)
		if err != nil {
			return nil, err
		}
		got, err := manifest.Load(name, data, opts)
		if err != nil {
			var list manifest.ErrorList
			if errors.As(err, &list) {
				problems = append(problems, list...)
				continue
			}
			return nil, err
		}
		docs = append(docs, got...)
	}
	if len(problems) > 0 {
		return nil, problems
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("no objects passed to apply (the files hold no documents)")
	}
	return docs, nil
}

// readSource reads one -f source, a file or "-" for stdin, and names it
// for messages. It reads at most one byte more than manifest.MaxSize, so
// that manifest.Load can say the input is too large without the whole of
// it in memory.
func readSource(src string, stdin io.Reader) ([]byte, string, error) {
	r, name := stdin, "<stdin>"
	if src != "-" {
		f, err := os.Open(src)
		if err != nil {
			return nil, "", fmt.Errorf("read %s: %w", src, err)
		}
		defer f.Close()
		r, name = f, src
	}
	data, err := io.ReadAll(io.LimitReader(r, manifest.MaxSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", name, err)
	}
	return data, name, nil
}

// expand turns a directory into its manifest files.
func expand(path string, recursive bool) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("the path %q does not exist", path)
	}
	if !fi.IsDir() {
		return []string{path}, nil
	}
	var out []string
	err = filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != path && !recursive {
				return filepath.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yaml", ".yml", ".json":
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", path, err)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil, fmt.Errorf("directory %s holds no .yaml, .yml or .json files", path)
	}
	return out, nil
}

func newApplyCommand(e *env) *cobra.Command {
	var files []string
	var recursive, dryRun bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|-",
		Short: "Create or update objects from manifests (YAML or JSON), all or nothing",
		Example: `  hub apply -f manifests/examples/hello-daemonset.yaml
  hub apply -f manifests/ -R
  cat ds.yaml | hub apply -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			docs, err := readManifests(files, recursive, manifest.LoadOptions{Namespace: e.namespace, Apply: true}, cmd.InOrStdin())
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			objs := make([]api.Object, len(docs))
			for i, d := range docs {
				objs[i] = d.Object
			}
			ctx, stop := signalContext()
			defer stop()
			results, err := c.Apply(ctx, objs, dryRun)
			if err != nil {
				return locateApplyProblems(err, docs)
			}
			suffix := ""
			if dryRun {
				suffix = " (dry run)"
			}
			for _, r := range results {
				k, _ := api.LookupKind(r.Kind)
				fmt.Fprintf(e.out, "%s %s%s\n", printer.ObjectName(k, r.Name), r.Action, suffix)
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "manifest file, directory or - (repeatable)")
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "read directories recursively")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "validate on the hub and show what would change, without changing it")
	return cmd
}

func newDeleteCommand(e *env) *cobra.Command {
	var files []string
	var recursive, ignoreNotFound bool
	cmd := &cobra.Command{
		Use:   "delete (-f FILE | KIND NAME... | KIND/NAME...)",
		Short: "Delete objects by manifest or by kind and name",
		Example: `  hub delete -f manifests/examples/hello-daemonset.yaml
  hub delete ds hello
  hub delete daemonset/hello -n default`,
		RunE: func(cmd *cobra.Command, args []string) error {
			type ref struct {
				kind      api.KindInfo
				namespace string
				name      string
			}
			var refs []ref
			switch {
			case len(files) > 0:
				if len(args) > 0 {
					return errors.New("give either -f or KIND NAME, not both")
				}
				// Any kind the hub has may be deleted, Pods included.
				docs, err := readManifests(files, recursive, manifest.LoadOptions{Namespace: e.namespace}, cmd.InOrStdin())
				if err != nil {
					return err
				}
				for _, d := range docs {
					k, _ := api.LookupKind(d.Object.GetTypeMeta().Kind)
					m := d.Object.GetObjectMeta()
					refs = append(refs, ref{k, m.Namespace, m.Name})
				}
			default:
				targets, err := parseTargets(args)
				if err != nil {
					return err
				}
				for _, t := range targets {
					if len(t.names) == 0 {
						return fmt.Errorf("resource(s) were provided, but no name was specified")
					}
					for _, n := range t.names {
						refs = append(refs, ref{t.kind, namespaceFor(t.kind, e.ns()), n})
					}
				}
			}
			// Namespaces last: deleting one deletes what is in it at once,
			// so the objects of a manifest that holds a Namespace and its
			// contents go first, each on its own (and said so), instead of
			// being NotFound after it.
			sort.SliceStable(refs, func(i, j int) bool {
				return refs[i].kind.Kind != api.KindNamespace && refs[j].kind.Kind == api.KindNamespace
			})
			c, err := e.client()
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			var failed error
			for _, r := range refs {
				err := c.Delete(ctx, r.kind, r.namespace, r.name)
				switch {
				case err == nil:
					fmt.Fprintf(e.out, "%s %q deleted\n", printer.TypeName(r.kind), r.name)
				case ignoreNotFound && client.IsNotFound(err):
				default:
					fmt.Fprintln(e.errOut, err)
					failed = errSilent
				}
			}
			return failed
		},
	}
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "manifest file, directory or - (repeatable)")
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "read directories recursively")
	cmd.Flags().BoolVar(&ignoreNotFound, "ignore-not-found", false, "treat a missing object as deleted")
	return cmd
}

// errSilent makes the command fail after it already printed why.
var errSilent = errors.New("")

// IsSilent reports whether err was already printed.
func IsSilent(err error) bool { return errors.Is(err, errSilent) }

func namespaceFor(k api.KindInfo, ns string) string {
	if !k.Namespaced {
		return ""
	}
	return ns
}

// target is one KIND with the names given for it.
type target struct {
	kind  api.KindInfo
	names []string
}

// parseTargets reads kubectl's argument forms: "KIND [NAME...]" and
// "KIND/NAME [KIND/NAME...]".
func parseTargets(args []string) ([]target, error) {
	if len(args) == 0 {
		return nil, errors.New("you must specify the type of resource (pods, nodes, daemonsets, namespaces)")
	}
	if strings.Contains(args[0], "/") {
		var out []target
		for _, a := range args {
			kind, name, ok := strings.Cut(a, "/")
			if !ok || name == "" {
				return nil, fmt.Errorf("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (got %q)", a)
			}
			k, err := api.LookupResource(kind)
			if err != nil {
				return nil, err
			}
			out = append(out, target{kind: k, names: []string{name}})
		}
		return out, nil
	}
	var out []target
	for _, kind := range strings.Split(args[0], ",") {
		k, err := api.LookupResource(kind)
		if err != nil {
			return nil, err
		}
		out = append(out, target{kind: k, names: args[1:]})
	}
	return out, nil
}
