package harness

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// cgroupMounts returns the mount points of the cgroup (v1) and cgroup2
// hierarchies.
func cgroupMounts() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Fields after " - " are: fstype source options.
		line := sc.Text()
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		fstype := strings.Fields(post)
		fields := strings.Fields(pre)
		if len(fstype) == 0 || len(fields) < 5 {
			continue
		}
		if fstype[0] == "cgroup" || fstype[0] == "cgroup2" {
			out = append(out, unescapeMountPath(fields[4]))
		}
	}
	return out, sc.Err()
}

// processCgroups returns the cgroup paths (relative to each hierarchy's
// root) that pid belongs to.
func processCgroups(pid int) []string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && parts[2] != "/" && !seen[parts[2]] {
			seen[parts[2]] = true
			out = append(out, parts[2])
		}
	}
	return out
}

// removeCgroups removes the cgroup directories rel (for instance
// "/<namespace>/<container>") in every hierarchy, waiting a bounded time for
// the killed processes to leave them. Missing and non-empty parents are not
// errors: only the directories named are removed.
func removeCgroups(rels []string) error {
	if len(rels) == 0 {
		return nil
	}
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range mounts {
		for _, rel := range rels {
			if err := rmdirRetry(filepath.Join(m, rel)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// rmdirRetry removes an empty cgroup, retrying while it is still busy.
func rmdirRetry(dir string) error {
	deadline := time.Now().Add(StopTimeout)
	for {
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTEMPTY) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		time.Sleep(pollInterval)
	}
}
