package api

import (
	"fmt"
	"sort"
	"strings"
)

// LabelSelector selects objects by their labels: every matchLabels pair and
// every matchExpressions requirement must hold. An empty selector matches
// everything.
type LabelSelector struct {
	MatchLabels      map[string]string          `json:"matchLabels,omitempty"`
	MatchExpressions []LabelSelectorRequirement `json:"matchExpressions,omitempty"`
}

// LabelSelectorRequirement is one set-based requirement.
type LabelSelectorRequirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

// Selector operators.
const (
	OpIn           = "In"
	OpNotIn        = "NotIn"
	OpExists       = "Exists"
	OpDoesNotExist = "DoesNotExist"
	opEquals       = "="
	opNotEquals    = "!="
)

// Selector is a parsed label selector.
type Selector []Requirement

// Requirement is one term of a selector.
type Requirement struct {
	Key      string
	Operator string
	Values   []string
}

// Matches reports whether labels satisfy every requirement.
func (s Selector) Matches(labels map[string]string) bool {
	for _, r := range s {
		if !r.matches(labels) {
			return false
		}
	}
	return true
}

// Empty reports whether the selector has no requirements (matches all).
func (s Selector) Empty() bool { return len(s) == 0 }

func (r Requirement) matches(labels map[string]string) bool {
	v, ok := labels[r.Key]
	switch r.Operator {
	case OpIn, opEquals:
		return ok && contains(r.Values, v)
	case OpNotIn, opNotEquals:
		return !ok || !contains(r.Values, v)
	case OpExists:
		return ok
	case OpDoesNotExist:
		return !ok
	}
	return false
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// String renders the selector in kubectl's -l syntax.
func (s Selector) String() string {
	parts := make([]string, 0, len(s))
	for _, r := range s {
		switch r.Operator {
		case opEquals:
			parts = append(parts, r.Key+"="+r.Values[0])
		case opNotEquals:
			parts = append(parts, r.Key+"!="+r.Values[0])
		case OpIn:
			parts = append(parts, r.Key+" in ("+strings.Join(r.Values, ",")+")")
		case OpNotIn:
			parts = append(parts, r.Key+" notin ("+strings.Join(r.Values, ",")+")")
		case OpExists:
			parts = append(parts, r.Key)
		case OpDoesNotExist:
			parts = append(parts, "!"+r.Key)
		}
	}
	return strings.Join(parts, ",")
}

// AsSelector converts a LabelSelector. A nil selector matches nothing, as in
// Kubernetes; an empty one matches everything.
func (ls *LabelSelector) AsSelector() (Selector, error) {
	if ls == nil {
		return Selector{{Key: "", Operator: OpIn}}, nil // matches nothing
	}
	keys := make([]string, 0, len(ls.MatchLabels))
	for k := range ls.MatchLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	sel := make(Selector, 0, len(keys)+len(ls.MatchExpressions))
	for _, k := range keys {
		sel = append(sel, Requirement{Key: k, Operator: opEquals, Values: []string{ls.MatchLabels[k]}})
	}
	for i, e := range ls.MatchExpressions {
		switch e.Operator {
		case OpIn, OpNotIn:
			if len(e.Values) == 0 {
				return nil, fmt.Errorf("matchExpressions[%d].values: must be non-empty for operator %s", i, e.Operator)
			}
		case OpExists, OpDoesNotExist:
			if len(e.Values) != 0 {
				return nil, fmt.Errorf("matchExpressions[%d].values: must be empty for operator %s", i, e.Operator)
			}
		default:
			return nil, fmt.Errorf("matchExpressions[%d].operator: %q is not one of In, NotIn, Exists, DoesNotExist", i, e.Operator)
		}
		sel = append(sel, Requirement{Key: e.Key, Operator: e.Operator, Values: append([]string(nil), e.Values...)})
	}
	return sel, nil
}

// SelectorFromMap makes an equality selector from a map such as a pod's
// nodeSelector. A nil or empty map matches everything.
func SelectorFromMap(m map[string]string) Selector {
	return (&LabelSelector{MatchLabels: m}).mustSelector()
}

func (ls *LabelSelector) mustSelector() Selector {
	s, _ := ls.AsSelector()
	return s
}

// ParseSelector parses kubectl's -l syntax: comma-separated terms of the
// forms key, !key, key=value, key==value, key!=value, key in (a,b) and
// key notin (a,b).
func ParseSelector(text string) (Selector, error) {
	var sel Selector
	rest := strings.TrimSpace(text)
	for rest != "" {
		term, remainder, err := nextTerm(rest)
		if err != nil {
			return nil, err
		}
		r, err := parseTerm(strings.TrimSpace(term))
		if err != nil {
			return nil, err
		}
		sel = append(sel, r)
		rest = strings.TrimSpace(remainder)
	}
	return sel, nil
}

// nextTerm splits off the first comma-separated term, keeping commas that
// sit inside parentheses.
func nextTerm(s string) (term, rest string, err error) {
	depth := 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
			if depth < 0 {
				return "", "", fmt.Errorf("selector %q: unbalanced ')'", s)
			}
		case ',':
			if depth == 0 {
				return s[:i], s[i+1:], nil
			}
		}
	}
	if depth != 0 {
		return "", "", fmt.Errorf("selector %q: unbalanced '('", s)
	}
	return s, "", nil
}

func parseTerm(t string) (Requirement, error) {
	if t == "" {
		return Requirement{}, fmt.Errorf("selector has an empty term")
	}
	if strings.HasPrefix(t, "!") {
		key := strings.TrimSpace(t[1:])
		return Requirement{Key: key, Operator: OpDoesNotExist}, checkSelectorKey(key)
	}
	if i := strings.Index(t, "!="); i >= 0 {
		return equalityTerm(t[:i], opNotEquals, t[i+2:])
	}
	if i := strings.Index(t, "=="); i >= 0 {
		return equalityTerm(t[:i], opEquals, t[i+2:])
	}
	if i := strings.Index(t, "="); i >= 0 {
		return equalityTerm(t[:i], opEquals, t[i+1:])
	}
	fields := strings.Fields(t)
	if len(fields) == 1 {
		return Requirement{Key: fields[0], Operator: OpExists}, checkSelectorKey(fields[0])
	}
	if len(fields) >= 2 {
		key := fields[0]
		op := ""
		switch strings.ToLower(fields[1]) {
		case "in":
			op = OpIn
		case "notin":
			op = OpNotIn
		default:
			// "key in(a,b)" without a space.
			lower := strings.ToLower(fields[1])
			switch {
			case strings.HasPrefix(lower, "in("):
				op = OpIn
			case strings.HasPrefix(lower, "notin("):
				op = OpNotIn
			}
		}
		if op != "" {
			open := strings.Index(t, "(")
			if open < 0 || !strings.HasSuffix(t, ")") {
				return Requirement{}, fmt.Errorf("selector term %q: want %s (value,...)", t, strings.ToLower(op))
			}
			var values []string
			for _, v := range strings.Split(t[open+1:len(t)-1], ",") {
				v = strings.TrimSpace(v)
				if err := ValidateLabelValue(v); err != nil {
					return Requirement{}, fmt.Errorf("selector term %q: %v", t, err)
				}
				values = append(values, v)
			}
			return Requirement{Key: key, Operator: op, Values: values}, checkSelectorKey(key)
		}
	}
	return Requirement{}, fmt.Errorf("selector term %q is not key, !key, key=value, key!=value, key in (...) or key notin (...)", t)
}

func equalityTerm(key, op, value string) (Requirement, error) {
	key, value = strings.TrimSpace(key), strings.TrimSpace(value)
	if err := checkSelectorKey(key); err != nil {
		return Requirement{}, err
	}
	if err := ValidateLabelValue(value); err != nil {
		return Requirement{}, fmt.Errorf("selector value for %q: %v", key, err)
	}
	return Requirement{Key: key, Operator: op, Values: []string{value}}, nil
}

func checkSelectorKey(key string) error {
	if err := ValidateLabelKey(key); err != nil {
		return fmt.Errorf("selector key: %v", err)
	}
	return nil
}
