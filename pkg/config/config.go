// Package config loads a command's settings with viper from three places,
// highest precedence first: command-line flags, FLOTILLA_* environment
// variables (FLOTILLA_NODE_NAME for --node-name), and a YAML file (keys as
// the flag names). The hub and the agent both use it, so their settings
// behave the same way.
package config

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// EnvPrefix prefixes every environment variable.
const EnvPrefix = "FLOTILLA"

// Load binds flags, the environment and, if file is not empty, the YAML
// file, and returns the viper instance to read settings from.
func Load(flags *pflag.FlagSet, file string) (*viper.Viper, error) {
	v := viper.New()
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_", ".", "_"))
	v.AutomaticEnv()
	if err := v.BindPFlags(flags); err != nil {
		return nil, fmt.Errorf("bind flags: %w", err)
	}
	if file != "" {
		v.SetConfigFile(file)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("read config file %s: %w", file, err)
		}
		if err := checkKeys(v, flags, file); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// checkKeys refuses a config file key that is not a flag, so a typo is an
// error rather than a setting silently ignored.
func checkKeys(v *viper.Viper, flags *pflag.FlagSet, file string) error {
	for _, k := range v.AllKeys() {
		if !v.InConfig(k) {
			continue
		}
		top := strings.SplitN(k, ".", 2)[0]
		if flags.Lookup(top) == nil {
			return fmt.Errorf("config file %s: unknown setting %q", file, top)
		}
	}
	return nil
}

// Given reports whether a setting was given by the user, as a flag, in the
// environment or in the config file, rather than left at its default.
func Given(v *viper.Viper, flags *pflag.FlagSet, key string) bool {
	if f := flags.Lookup(key); f != nil && f.Changed {
		return true
	}
	env := EnvPrefix + "_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(key))
	if _, ok := os.LookupEnv(env); ok {
		return true
	}
	return v.InConfig(key)
}

// StringList reads a repeatable setting. From a flag it is a list; from the
// environment it is one string, split on commas.
func StringList(v *viper.Viper, key string) []string {
	var out []string
	for _, item := range v.GetStringSlice(key) {
		for _, part := range strings.Split(item, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

// Labels parses k=v items into a map.
func Labels(items []string) (map[string]string, error) {
	out := make(map[string]string, len(items))
	for _, item := range items {
		k, val, ok := strings.Cut(item, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value", item)
		}
		out[k] = val
	}
	return out, nil
}
