//go:build pprof

package main

// Built with -tags pprof (make bench does, for the profiles it takes), the
// hub serves net/http/pprof on $FLOTILLA_PPROF_LISTEN (for example
// 127.0.0.1:6060). Release builds carry none of it.

import (
	"log/slog"
	"net/http"
	_ "net/http/pprof" // registers on http.DefaultServeMux
	"os"
)

func init() {
	addr := os.Getenv("FLOTILLA_PPROF_LISTEN")
	if addr == "" {
		return
	}
	go func() {
		if err := http.ListenAndServe(addr, nil); err != nil {
			slog.Error("pprof listener", "addr", addr, "err", err)
		}
	}()
}
