package api

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Quantity is a Kubernetes resource quantity such as "250m", "0.5", "128Mi"
// or "1e9". It keeps the text the user wrote and parses it on demand. In
// manifests it may be written as a string or a bare number.
type Quantity string

// MustParseQuantity returns q after checking it parses; for tests and
// constants.
func MustParseQuantity(s string) Quantity {
	if _, err := parseQuantity(s); err != nil {
		panic(err)
	}
	return Quantity(s)
}

// UnmarshalJSON accepts a JSON string or number.
func (q *Quantity) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*q = Quantity(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("quantity must be a string or a number")
	}
	*q = Quantity(n.String())
	return nil
}

var binarySuffixes = map[string]int64{
	"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60,
}

var decimalSuffixes = map[string]int{
	"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18,
}

// parseQuantity returns the quantity's exact value.
func parseQuantity(s string) (*big.Rat, error) {
	if s == "" {
		return nil, fmt.Errorf("quantity is empty")
	}
	if len(s) > 64 {
		return nil, fmt.Errorf("quantity %.20q… is too long", s)
	}
	// Split the number from its suffix: the number is [+-]digits[.digits].
	i := 0
	if s[0] == '+' || s[0] == '-' {
		i++
	}
	digits := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		if s[i] != '.' {
			digits++
		}
		i++
	}
	if digits == 0 {
		return nil, fmt.Errorf("quantity %q must start with a number", s)
	}
	num, suffix := s[:i], s[i:]
	if strings.Count(num, ".") > 1 {
		return nil, fmt.Errorf("quantity %q has more than one decimal point", s)
	}
	value, ok := new(big.Rat).SetString(num)
	if !ok {
		return nil, fmt.Errorf("quantity %q is not a number", s)
	}
	if mult, ok := binarySuffixes[suffix]; ok {
		return value.Mul(value, new(big.Rat).SetInt64(mult)), nil
	}
	if exp, ok := decimalSuffixes[suffix]; ok {
		return value.Mul(value, pow10(exp)), nil
	}
	if suffix[0] == 'e' || suffix[0] == 'E' {
		exp, err := strconv.Atoi(suffix[1:])
		if err != nil || exp > 30 || exp < -30 {
			return nil, fmt.Errorf("quantity %q has an invalid exponent", s)
		}
		return value.Mul(value, pow10(exp)), nil
	}
	return nil, fmt.Errorf("quantity %q has unknown suffix %q (want one of n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent)", s, suffix)
}

func pow10(exp int) *big.Rat {
	if exp >= 0 {
		return new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(exp)), nil))
	}
	return new(big.Rat).SetFrac(big.NewInt(1), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(-exp)), nil))
}

// Validate reports whether q is a well-formed, non-negative quantity.
func (q Quantity) Validate() error {
	v, err := parseQuantity(string(q))
	if err != nil {
		return err
	}
	if v.Sign() < 0 {
		return fmt.Errorf("quantity %q must not be negative", string(q))
	}
	return nil
}

// MilliValue returns q in thousandths, rounded up (250m cpu is 250). Invalid
// or out-of-range quantities return 0 or math.MaxInt64.
func (q Quantity) MilliValue() int64 {
	return q.scaled(1000)
}

// Value returns q rounded up to a whole number (128Mi is 134217728).
func (q Quantity) Value() int64 {
	return q.scaled(1)
}

func (q Quantity) scaled(by int64) int64 {
	v, err := parseQuantity(string(q))
	if err != nil {
		return 0
	}
	v.Mul(v, new(big.Rat).SetInt64(by))
	n := new(big.Int).Quo(v.Num(), v.Denom())
	if new(big.Rat).SetInt(n).Cmp(v) < 0 {
		n.Add(n, big.NewInt(1))
	}
	if !n.IsInt64() {
		return math.MaxInt64
	}
	return n.Int64()
}

// String returns the quantity as written.
func (q Quantity) String() string { return string(q) }

// FormatBytes renders a byte count with a binary suffix (Ki, Mi, Gi), the way
// kubectl shows memory.
func FormatBytes(n int64) string {
	units := []string{"Ki", "Mi", "Gi", "Ti", "Pi"}
	if n < 1024 {
		return strconv.FormatInt(n, 10)
	}
	v := float64(n)
	unit := ""
	for _, u := range units {
		if v < 1024 {
			break
		}
		v /= 1024
		unit = u
	}
	return strconv.FormatFloat(math.Floor(v), 'f', 0, 64) + unit
}
