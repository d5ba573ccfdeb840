package wire

import "time"

// Request and reply topics: the hub asks one agent for something that only
// the board has (a container's log) and the agent answers on its replies
// topic with the request's ID. Neither is retained nor queued: a request
// nobody answers in time fails at the hub, and a reply nobody waits for is
// dropped.
const (
	TopicRequests = "requests" // hub → agent, QoS 1: LogRequest, HelloRequest
	TopicReplies  = "replies"  // agent → hub, QoS 1: LogReply
)

// Message types of the request and reply topics.
const (
	TypeLogRequest = "LogRequest"
	TypeLogReply   = "LogReply"
	// TypeHelloRequest asks an agent to send its Hello and its pods'
	// status again: the hub hears from a node whose hello it missed (sent
	// while the hub was away from an external broker, which keeps nothing
	// for it), or that is back to Ready by a heartbeat alone after the hub
	// had marked it NotReady and its pods lost.
	TypeHelloRequest = "HelloRequest"
)

// HelloRequest asks for the node's Hello and PodStatus on its status topic. It has no
// fields; the envelope's node names the node.
type HelloRequest struct{}

// MaxLogChunk bounds the log bytes of one reply, well inside MaxPayload
// once base64-encoded. A longer answer is paged with cursors.
const MaxLogChunk = 512 << 10

// MaxLogWait bounds how long an agent holds a follow request open while
// there is nothing new to send.
const MaxLogWait = 10 * time.Second

// LogRequest asks for a piece of one container's output. Without a
// Cursor, the piece starts where TailLines or SinceTime put it (or at the
// beginning of the run); with one, it continues from there.
type LogRequest struct {
	ID        string `json:"id"`
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	UID       string `json:"uid"`
	Container string `json:"container"`
	// Previous asks for the run before the current one.
	Previous  bool       `json:"previous,omitempty"`
	TailLines *int64     `json:"tailLines,omitempty"`
	SinceTime *time.Time `json:"sinceTime,omitempty"`
	// LimitBytes bounds the data of this reply (at most MaxLogChunk).
	LimitBytes int64      `json:"limitBytes,omitempty"`
	Cursor     *LogCursor `json:"cursor,omitempty"`
	// WaitSeconds, with a Cursor at the end of the data, lets the agent
	// hold the request until new output arrives or this much time passes
	// (at most MaxLogWait), so that following costs one request per
	// burst of output, not one per poll.
	WaitSeconds float64 `json:"wait,omitempty"`
}

// LogCursor is a position in a container's output: the run (the
// container's restart number) and the byte offset within everything that
// run ever wrote, including bytes since rotated away.
type LogCursor struct {
	Run    int32 `json:"run"`
	Offset int64 `json:"offset"`
}

// LogReply answers a LogRequest with the same ID.
type LogReply struct {
	ID   string `json:"id"`
	Data []byte `json:"data,omitempty"`
	// Cursor is where the next request continues.
	Cursor LogCursor `json:"cursor"`
	// More is set when more output is available now past Cursor.
	More bool `json:"more,omitempty"`
	// Ended is set when the run has ended (a newer one exists) and
	// everything it wrote up to Cursor has been sent.
	Ended bool `json:"ended,omitempty"`
	// Skipped counts bytes between the requested cursor and Data that
	// rotation removed before they could be read.
	Skipped int64 `json:"skipped,omitempty"`
	// Error, with Reason (NotFound, BadRequest, InternalError), says why
	// there is no data.
	Error  string `json:"error,omitempty"`
	Reason string `json:"reason,omitempty"`
}
