package api

import (
	"fmt"
	"regexp"
	"strings"
)

var (
	dns1123Label     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dns1035Label     = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	labelName        = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	envVarName       = regexp.MustCompile(`^[-._a-zA-Z][-._a-zA-Z0-9]*$`)
)

// ValidateDNSLabel checks an RFC 1123 label: at most 63 lower-case
// alphanumerics or '-', starting and ending with an alphanumeric. Namespace,
// container, port and volume names are labels.
func ValidateDNSLabel(s string) error {
	if s == "" {
		return fmt.Errorf("required")
	}
	if len(s) > 63 {
		return fmt.Errorf("%q is longer than 63 characters", s)
	}
	if !dns1123Label.MatchString(s) {
		return fmt.Errorf("%q is not a valid name: use lower-case letters, digits and '-', starting and ending with a letter or digit", s)
	}
	return nil
}

// ValidateDNS1035Label checks an RFC 1035 label: an RFC 1123 label that
// starts with a letter. Service names are such labels, since each is the
// first label of the Service's DNS name.
func ValidateDNS1035Label(s string) error {
	if err := ValidateDNSLabel(s); err != nil {
		return err
	}
	if !dns1035Label.MatchString(s) {
		return fmt.Errorf("%q is not a valid name: it must start with a letter", s)
	}
	return nil
}

// ValidateDNSSubdomain checks an RFC 1123 subdomain: at most 253 characters
// of dot-separated labels. Object names (DaemonSets, Pods, Nodes) are
// subdomains.
func ValidateDNSSubdomain(s string) error {
	if s == "" {
		return fmt.Errorf("required")
	}
	if len(s) > 253 {
		return fmt.Errorf("%q is longer than 253 characters", s)
	}
	if !dns1123Subdomain.MatchString(s) {
		return fmt.Errorf("%q is not a valid name: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit", s)
	}
	return nil
}

// ValidateLabelKey checks a label or annotation key: an optional DNS
// subdomain prefix and '/', then a name of at most 63 characters.
func ValidateLabelKey(k string) error {
	if k == "" {
		return fmt.Errorf("label key is empty")
	}
	name := k
	if i := strings.LastIndex(k, "/"); i >= 0 {
		prefix := k[:i]
		name = k[i+1:]
		if err := ValidateDNSSubdomain(prefix); err != nil {
			return fmt.Errorf("label key %q: prefix: %v", k, err)
		}
	}
	if len(name) > 63 || !labelName.MatchString(name) {
		return fmt.Errorf("label key %q is not valid: the name part must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", k)
	}
	return nil
}

// ValidateLabelValue checks a label value: empty, or at most 63 letters,
// digits, '-', '_' or '.', starting and ending with a letter or digit.
func ValidateLabelValue(v string) error {
	if v == "" {
		return nil
	}
	if len(v) > 63 || !labelName.MatchString(v) {
		return fmt.Errorf("label value %q is not valid: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", v)
	}
	return nil
}

// ValidateEnvVarName checks an environment variable name.
func ValidateEnvVarName(n string) error {
	if n == "" {
		return fmt.Errorf("required")
	}
	if !envVarName.MatchString(n) {
		return fmt.Errorf("%q is not a valid environment variable name", n)
	}
	return nil
}

// MaxConfigKeyLength bounds a key of a Secret or ConfigMap.
const MaxConfigKeyLength = 253

var configKey = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)

// ValidateConfigKey checks a key of a Secret's or ConfigMap's data, as
// Kubernetes does: at most 253 letters, digits, '-', '_' or '.', and not
// "." or "..", nor starting with "..", since each key can become a file
// name in a volume.
func ValidateConfigKey(k string) error {
	switch {
	case k == "":
		return fmt.Errorf("key is empty")
	case len(k) > MaxConfigKeyLength:
		return fmt.Errorf("key %.40q... is longer than %d characters", k, MaxConfigKeyLength)
	case !configKey.MatchString(k):
		return fmt.Errorf("key %q is not valid: use letters, digits, '-', '_' or '.'", k)
	case k == "." || k == "..":
		return fmt.Errorf("key %q is not valid: it may not be '.' or '..'", k)
	case strings.HasPrefix(k, ".."):
		return fmt.Errorf("key %q is not valid: it may not start with '..'", k)
	}
	return nil
}
