package api

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// IntOrString holds an integer or a string such as "25%", as Kubernetes'
// intstr.IntOrString does for maxUnavailable and maxSurge.
type IntOrString struct {
	IsString bool
	IntVal   int32
	StrVal   string
}

// FromInt returns an integer IntOrString.
func FromInt(i int32) IntOrString { return IntOrString{IntVal: i} }

// FromString returns a string IntOrString ("25%").
func FromString(s string) IntOrString { return IntOrString{IsString: true, StrVal: s} }

// MarshalJSON writes a number or a string.
func (v IntOrString) MarshalJSON() ([]byte, error) {
	if v.IsString {
		return json.Marshal(v.StrVal)
	}
	return json.Marshal(v.IntVal)
}

// UnmarshalJSON reads a number or a string.
func (v *IntOrString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		v.IsString = true
		v.IntVal = 0
		return json.Unmarshal(b, &v.StrVal)
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("must be an integer or a string such as \"25%%\"")
	}
	if n < math.MinInt32 || n > math.MaxInt32 {
		return fmt.Errorf("integer %d is out of range", n)
	}
	v.IsString, v.IntVal, v.StrVal = false, int32(n), ""
	return nil
}

func (v IntOrString) String() string {
	if v.IsString {
		return v.StrVal
	}
	return strconv.Itoa(int(v.IntVal))
}

// ScaledValue resolves v against total: an integer is itself, a percentage
// is that share of total, rounded up or down as Kubernetes does
// (maxSurge rounds up, maxUnavailable rounds down).
func (v IntOrString) ScaledValue(total int, roundUp bool) (int, error) {
	if !v.IsString {
		if v.IntVal < 0 {
			return 0, fmt.Errorf("%d must not be negative", v.IntVal)
		}
		return int(v.IntVal), nil
	}
	s, ok := strings.CutSuffix(v.StrVal, "%")
	if !ok {
		return 0, fmt.Errorf("%q must be an integer or a percentage such as \"25%%\"", v.StrVal)
	}
	pct, err := strconv.Atoi(s)
	if err != nil || pct < 0 {
		return 0, fmt.Errorf("%q is not a valid percentage", v.StrVal)
	}
	if roundUp {
		return int(math.Ceil(float64(pct) * float64(total) / 100)), nil
	}
	return int(math.Floor(float64(pct) * float64(total) / 100)), nil
}
