// Package rollout plans fleet rollouts. Plan takes the target revision,
// the state of every target node and the rollout's parameters, and decides
// which nodes move to the target now and where the rollout stands. It is a
// pure function: everything it needs, including the little state a rollout
// keeps between passes, comes in as arguments, so a hub restarted in the
// middle of a rollout plans exactly as before. The package also holds what
// the DaemonSet and Deployment controllers share: the Kubernetes budget
// arithmetic and the ControllerRevision history.
package rollout

import (
	"fmt"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Budget resolves maxUnavailable and maxSurge against total as Kubernetes
// does: maxUnavailable rounds down, maxSurge rounds up, and when both come
// to 0, maxUnavailable is 1 so that a rollout can always move. A nil value
// takes its default. An invalid value is an error, and the defaults are
// used in its place.
func Budget(maxUnavailable, maxSurge *api.IntOrString, total int, defUnavailable, defSurge api.IntOrString) (unavailable, surge int, err error) {
	uv, sv := defUnavailable, defSurge
	if maxUnavailable != nil {
		uv = *maxUnavailable
	}
	if maxSurge != nil {
		sv = *maxSurge
	}
	unavailable, errU := uv.ScaledValue(total, false)
	if errU != nil {
		unavailable, _ = defUnavailable.ScaledValue(total, false)
		err = fmt.Errorf("maxUnavailable: %w", errU)
	}
	surge, errS := sv.ScaledValue(total, true)
	if errS != nil {
		surge, _ = defSurge.ScaledValue(total, true)
		if err == nil {
			err = fmt.Errorf("maxSurge: %w", errS)
		}
	}
	if unavailable == 0 && surge == 0 {
		unavailable = 1
	}
	return unavailable, surge, err
}

// Scaled resolves a count-or-percentage against total, rounding as asked;
// nil is def.
func Scaled(v *api.IntOrString, total int, roundUp bool, def int) (int, error) {
	if v == nil {
		return def, nil
	}
	n, err := v.ScaledValue(total, roundUp)
	if err != nil {
		return def, err
	}
	return n, nil
}
