package controller

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
)

func TestSteps(t *testing.T) {
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	readFails := errors.New("disk on fire")
	writeFails := errors.New("store is full")
	for _, tc := range []struct {
		name              string
		read, write       error
		wantWake          time.Time
		wantErr           error
		planned, wrote    bool
		wantReadErrPrefix bool
	}{
		{name: "read, plan, write", wantWake: at, planned: true, wrote: true},
		{name: "skip: no plan, no write", read: ErrSkip},
		{name: "skip, wrapped", read: fmt.Errorf("no Deployments: %w", ErrSkip)},
		{name: "a failed read", read: readFails, wantErr: readFails, wantReadErrPrefix: true},
		{name: "a failed write keeps the wake", write: writeFails, wantWake: at, wantErr: writeFails, planned: true, wrote: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var planned, wrote bool
			s := Steps[int, string]{
				Store: store.NewMemory(),
				Read:  func(store.Tx) (int, error) { return 7, tc.read },
				Plan: func(in int) (string, time.Time) {
					planned = true
					return fmt.Sprint(in), at
				},
				Write: func(out string) error {
					wrote = true
					if out != "7" {
						t.Errorf("wrote %q, want the plan", out)
					}
					return tc.write
				},
			}
			wake, err := s.Pass(context.Background(), Started)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if tc.wantReadErrPrefix && err.Error() != "read state: "+tc.read.Error() {
				t.Fatalf("err %q lacks its context", err)
			}
			if !wake.Equal(tc.wantWake) || planned != tc.planned || wrote != tc.wrote {
				t.Fatalf("wake %s planned %v wrote %v; want %s %v %v", wake, planned, wrote, tc.wantWake, tc.planned, tc.wrote)
			}
		})
	}
}
