package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/viper"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/devices"
	"github.com/flotilla-edge/flotilla/pkg/config"
)

// deviceConfig reads the device flags: the dev root, and the classes,
// the defaults overlaid by the board profile's, then by --device-class.
func deviceConfig(v *viper.Viper) (*devices.Config, error) {
	root, err := filepath.Abs(v.GetString("dev-root"))
	if err != nil {
		return nil, fmt.Errorf("--dev-root: %w", err)
	}
	var profile []devices.Class
	if file := v.GetString("board-profile"); file != "" {
		if profile, err = devices.LoadProfile(file); err != nil {
			return nil, fmt.Errorf("--board-profile: %w", err)
		}
	}
	flags, err := devices.ParseClassFlags(config.StringList(v, "device-class"))
	if err != nil {
		return nil, err
	}
	rescan := v.GetDuration("device-rescan-interval")
	if rescan <= 0 {
		return nil, fmt.Errorf("--device-rescan-interval %s: want a positive duration", rescan)
	}
	return &devices.Config{Root: root, Classes: devices.Merge(devices.DefaultClasses(), profile, flags), Rescan: rescan}, nil
}
