package devices

import (
	"testing"
)

// FuzzParseProfile: a board profile of any content is read or refused
// with an error, never a panic, and what it yields passes the checks.
func FuzzParseProfile(f *testing.F) {
	f.Add([]byte("devices:\n  serial: [ttyAMA*, ttyUSB*]\n  video: []\n"))
	f.Add([]byte("board: x\ndevices: {gpio: [gpiochip0]}\n"))
	f.Add([]byte("devices: [a]\n"))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		classes, err := parseProfile("fuzz.yaml", raw)
		if err != nil {
			return
		}
		for _, c := range classes {
			if err := checkClass(c); err != nil {
				t.Fatalf("a class that fails its check was read: %v", err)
			}
		}
	})
}

// FuzzParseState: a holdings file of any content is read or refused
// with an error, never a panic; what it yields names a device and a pod.
func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"version":1,"holds":[{"device":{"Class":"serial","Path":"ttyUSB0","Type":"c","Major":188},"podUID":"u","namespace":"default","pod":"p","container":"c"}]}`))
	f.Add([]byte(`{"version":1,"holds":null}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		holds, err := parseState(raw)
		if err != nil {
			return
		}
		for path, h := range holds {
			if path != h.Device.Path || path == "" || h.PodUID == "" {
				t.Fatalf("holding %+v under %q", h, path)
			}
		}
	})
}

// FuzzParseClassFlags: any --device-class values are taken or refused,
// never a panic.
func FuzzParseClassFlags(f *testing.F) {
	f.Add("serial=ttyUSB*,ttyACM*", "gpio=gpiochip*")
	f.Add("ttyACM*", "video=")
	f.Fuzz(func(t *testing.T, a, b string) {
		classes, err := ParseClassFlags([]string{a, b})
		if err != nil {
			return
		}
		for _, c := range classes {
			if err := checkClass(c); err != nil {
				t.Fatalf("a class that fails its check was taken: %v", err)
			}
		}
	})
}
