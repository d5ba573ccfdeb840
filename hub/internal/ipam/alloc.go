package ipam

import (
	"errors"
	"fmt"
	"math/rand/v2"
)

// What an allocation can fail on; every error the allocators return
// wraps one of these and says the rest in words.
var (
	// ErrOutOfRange: a requested address, subnet or port is outside the
	// range it must come from (or is one never handed out).
	ErrOutOfRange = errors.New("not in range")
	// ErrInUse: a requested one is allocated to someone else.
	ErrInUse = errors.New("already allocated")
	// ErrFull: nothing is left to allocate.
	ErrFull = errors.New("range is full")
)

// Error is an allocation failure: Kind is one of the errors above, Msg
// says what failed in words.
type Error struct {
	Kind error
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns Kind.
func (e *Error) Unwrap() error { return e.Kind }

func errorf(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Rand picks where a dynamic allocation starts looking, so that an
// address or port just released is not handed out again at once.
type Rand interface {
	IntN(n int) int
}

type randFunc func(int) int

func (f randFunc) IntN(n int) int { return f(n) }

// DefaultRand is math/rand/v2's generator.
var DefaultRand Rand = randFunc(rand.IntN)

// staticBand is how much of the start of a range of n dynamic allocation
// leaves for last, as Kubernetes does (its ServiceIPStaticSubrange and
// ServiceNodePortStaticSubrange): min(max(min, n/step), max), none for a
// range smaller than min. Asking for an address or port in that band
// makes a clash with an allocated one unlikely.
func staticBand(n, min, max, step uint64) uint64 {
	if n < min {
		return 0
	}
	b := n / step
	if b < min {
		b = min
	}
	if b > max {
		b = max
	}
	return b
}

// pick finds a free offset in [lo, hi), starting at a random one and
// wrapping around, and reports whether it found one.
func pick(r Rand, lo, hi uint64, free func(off uint64) bool) (uint64, bool) {
	if hi <= lo {
		return 0, false
	}
	span := hi - lo
	start := uint64(r.IntN(int(span)))
	for i := range span {
		off := lo + (start+i)%span
		if free(off) {
			return off, true
		}
	}
	return 0, false
}

// release removes every entry of owner from used.
func release[K comparable](used map[K]string, owner string) {
	for k, o := range used {
		if o == owner {
			delete(used, k)
		}
	}
}
