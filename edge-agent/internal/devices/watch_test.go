package devices

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestRunFollowsHotPlug: with the periodic rescan out of the way (an
// hour), a device plugged in or pulled out, in the root or in a
// directory that appears later, is seen through inotify.
func TestRunFollowsHotPlug(t *testing.T) {
	root := devRoot(t)
	changes := make(chan struct{}, 16)
	inv, err := Open(Config{Root: root, Rescan: time.Hour,
		Classes: []Class{{"serial", []string{"ttyUSB*", "serial/by-id/*"}}},
		Changed: func() { changes <- struct{}{} }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := inv.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	defer func() { cancel(); wg.Wait() }()

	count := func() string { return string(inv.Capacity()["devices.flotilla.io/serial"]) }
	waitFor := func(want string) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for count() != want {
			select {
			case <-changes:
			case <-deadline:
				t.Fatalf("serial count %s, want %s: the change was not seen", count(), want)
			}
		}
	}
	// Plugged before Run watches or after: Run's first scan, or inotify,
	// sees it.
	plug(t, root, "ttyUSB0")
	waitFor("1")
	plug(t, root, "ttyUSB1")
	waitFor("2")
	unplug(t, root, "ttyUSB0")
	waitFor("1")
	// A directory made after Run started: its parent is not watched
	// (only serial/by-id's literal parents that exist are), the root is,
	// so making "serial" is seen, and the next scan watches it.
	plug(t, root, "serial/by-id/usb-FTDI_1")
	waitFor("2")
	plug(t, root, "serial/by-id/usb-FTDI_2")
	waitFor("3")
}
