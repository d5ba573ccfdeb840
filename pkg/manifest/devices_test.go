package manifest

import (
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// deviceDeployment is a Deployment whose container has the given
// resources block (indented for the container).
func deviceDeployment(resources string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata: {name: modbus}
spec:
  selector: {matchLabels: {app: modbus}}
  template:
    metadata: {labels: {app: modbus}}
    spec:
      containers:
      - name: gateway
        image: registry.local/modbus:1
        resources:
` + resources
}

func TestLoadDefaultsDeviceRequestsToLimits(t *testing.T) {
	docs, err := Load("modbus.yaml", []byte(deviceDeployment(`          limits:
            devices.flotilla.io/serial: 1
            cpu: 500m
`)), LoadOptions{Apply: true})
	if err != nil {
		t.Fatal(err)
	}
	c := docs[0].Object.(*api.Deployment).Spec.Template.Spec.Containers[0]
	if got := c.Resources.Requests["devices.flotilla.io/serial"]; got != "1" {
		t.Errorf("request of devices.flotilla.io/serial = %q, want the limit 1", got)
	}
	if _, ok := c.Resources.Requests["cpu"]; ok {
		t.Errorf("cpu request defaulted (%q): only device resources are", c.Resources.Requests["cpu"])
	}
	if got := api.DeviceLimits(&c); len(got) != 1 || got["serial"] != 1 {
		t.Errorf("DeviceLimits = %v, want serial: 1", got)
	}
}

func TestLoadRefusesBadDeviceResources(t *testing.T) {
	const c0 = "spec.template.spec.containers[0].resources"
	for _, tc := range []struct {
		name, resources, field, msg string
	}{
		{"fraction", "          limits:\n            devices.flotilla.io/serial: 500m\n",
			c0 + ".limits[devices.flotilla.io/serial]", `must be an integer: devices are counted whole, not "500m"`},
		{"fraction written as a decimal", "          limits:\n            devices.flotilla.io/serial: \"1.5\"\n",
			c0 + ".limits[devices.flotilla.io/serial]", "must be an integer"},
		{"negative", "          limits:\n            devices.flotilla.io/serial: -1\n",
			c0 + ".limits[devices.flotilla.io/serial]", "must not be negative"},
		{"bad class", "          limits:\n            devices.flotilla.io/Serial_Port: 1\n",
			c0 + ".limits[devices.flotilla.io/Serial_Port]", "lower-case letters, digits and '-'"},
		{"empty class", "          limits:\n            devices.flotilla.io/: 1\n",
			c0 + ".limits[devices.flotilla.io/]", "device class is empty"},
		{"request without a limit", "          requests:\n            devices.flotilla.io/video: 1\n",
			c0 + ".limits[devices.flotilla.io/video]", `must be set: a device resource is not overcommitted`},
		{"request below the limit", "          limits:\n            devices.flotilla.io/video: 2\n          requests:\n            devices.flotilla.io/video: 1\n",
			c0 + ".requests[devices.flotilla.io/video]", `must be equal to the devices.flotilla.io/video limit "2"`},
		{"request above the limit", "          limits:\n            devices.flotilla.io/video: 1\n          requests:\n            devices.flotilla.io/video: 3\n",
			c0 + ".requests[devices.flotilla.io/video]", `must be equal to the devices.flotilla.io/video limit "1"`},
		{"another vendor's extended resource", "          limits:\n            nvidia.com/gpu: 1\n",
			c0 + ".limits[nvidia.com/gpu]", "Flotilla supports only cpu, memory and devices.flotilla.io/CLASS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := Load("modbus.yaml", []byte(deviceDeployment(tc.resources)), LoadOptions{Apply: true})
			if err == nil {
				t.Fatalf("loaded %d objects, want an error at %s", len(docs), tc.field)
			}
			list := errorsOf(t, err)
			for _, e := range list {
				if e.Field == tc.field && strings.Contains(e.Msg, tc.msg) {
					if len(list) != 1 {
						t.Errorf("want one error, got:\n%v", list)
					}
					return
				}
			}
			t.Errorf("want %s: …%s…, got:\n%v", tc.field, tc.msg, list)
		})
	}
}

func TestLoadAcceptsEqualDeviceRequestsAndLimits(t *testing.T) {
	_, err := Load("modbus.yaml", []byte(deviceDeployment(`          limits:
            devices.flotilla.io/gpio: "2"
            devices.flotilla.io/i2c-bus: 1
          requests:
            devices.flotilla.io/gpio: 2
`)), LoadOptions{Apply: true})
	if err != nil {
		t.Fatal(err)
	}
}
