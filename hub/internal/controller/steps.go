package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
)

// ErrSkip, returned by Steps.Read, ends the pass there: there is nothing
// to do, and nothing to write.
var ErrSkip = errors.New("nothing to do")

// Steps is a level-triggered pass in three steps. Read gathers the pass's
// input in one read-only transaction; Plan decides, from the input alone,
// what to write and when to run again even if nothing changes (zero: not
// until something does); Write stores the plan. Plan runs outside the
// transaction, so that the store's writers do not wait for it; the
// objects Read gets with store.ListShared are the store's own, and Plan
// must not change them. Pass is the Loop's Pass.
type Steps[In, Out any] struct {
	Store store.Store
	Read  func(tx store.Tx) (In, error)
	Plan  func(in In) (out Out, wake time.Time)
	Write func(out Out) error
}

// Pass runs the steps once (the cause does not matter to a
// level-triggered pass). It returns the plan's wake time even when the
// write fails: the write is retried by the next pass, the wait still
// stands.
func (s Steps[In, Out]) Pass(context.Context, Cause) (time.Time, error) {
	var in In
	err := s.Store.View(func(tx store.Tx) error {
		var err error
		in, err = s.Read(tx)
		return err
	})
	if errors.Is(err, ErrSkip) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read state: %w", err)
	}
	out, wake := s.Plan(in)
	return wake, s.Write(out)
}
