package wire

// AgentClientID is the MQTT client id of node's agent. The broker's access
// control binds it to the node's certificate, so that one node cannot take
// over (and so cut off) another's session by connecting with its id.
func AgentClientID(node string) string { return "flotilla-agent-" + node }
