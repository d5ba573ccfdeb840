package scheduler

import "github.com/flotilla-edge/flotilla/pkg/api"

// Reserve takes room on nodes for up to n pods like pod, without choosing
// the best node for each as Place does: it fills the nodes in order, each
// as far as the pod fits on it, adding the pods' requests to the nodes'
// (it changes nodes). It returns how many pods it found room for and, if
// fewer than n, why the rest fit nowhere, as Place says it. What it costs
// grows with the nodes it looks at, not with n times the nodes, so that a
// caller asking for many groups at once (the autoscaler's capacity check)
// stays cheap.
func Reserve(pod Pod, nodes []Node, n int) (int, string) {
	sel := api.SelectorFromMap(pod.NodeSelector)
	placed := 0
	for j := range nodes {
		nd := &nodes[j]
		for placed < n && unfit(nd, pod, sel) == "" {
			nd.Requested.MilliCPU += pod.Requests.MilliCPU
			nd.Requested.Memory += pod.Requests.Memory
			nd.Requested.Pods++
			nd.Group++
			placed++
		}
		if placed == n {
			return placed, ""
		}
	}
	why := map[string]int{}
	for j := range nodes {
		if r := unfit(&nodes[j], pod, sel); r != "" {
			why[r]++
		}
	}
	return placed, explain(len(nodes), why)
}
