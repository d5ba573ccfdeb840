package harness

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ProcStats is a process's CPU time and memory, from /proc.
type ProcStats struct {
	CPU     time.Duration // user + system, every thread
	RSS     int64         // VmRSS, bytes
	Peak    int64         // VmHWM, bytes
	Anon    int64         // RssAnon, bytes: the process's private memory
	File    int64         // RssFile, bytes: mapped files, its own executable included
	Threads int
	Taken   time.Time
}

// ReadProc reads pid's CPU time (/proc/PID/stat) and memory
// (/proc/PID/status).
func ReadProc(pid int) (ProcStats, error) {
	st := ProcStats{Taken: time.Now()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return st, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(s[i+2:])
	if len(fields) < 13 {
		return st, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	st.CPU = time.Duration(utime+stime) * time.Second / hz

	if b, err = os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err != nil {
		return st, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			st.RSS = n << 10
		case "VmHWM":
			st.Peak = n << 10
		case "RssAnon":
			st.Anon = n << 10
		case "RssFile":
			st.File = n << 10
		case "Threads":
			st.Threads = int(n)
		}
	}
	return st, nil
}
