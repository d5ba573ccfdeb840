// Package link is an MQTT session that outlives its broker connection: it
// connects with capped exponential back-off and full jitter (so a thousand
// agents returning after a site outage do not stampede the broker), backs
// off further when the broker refuses it, re-subscribes after every
// reconnect, and publishes with a bounded wait for the broker's
// acknowledgement. Both the hub and the agent talk MQTT only through it; it
// carries bytes and knows nothing of Flotilla's messages.
package link

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// ErrNotConnected is returned by Publish while the session is down.
var ErrNotConnected = errors.New("not connected to the broker")

// ErrRefused is wrapped by a connect that the broker refused, rather than
// one that could not reach it: a CONNACK "not authorised", "bad user name
// or password" or "identifier rejected", or a TLS alert from the broker
// during the handshake (a revoked, expired or unknown client
// certificate). Retrying does not mend it until someone changes the
// credentials or the broker.
var ErrRefused = errors.New("refused by the broker")

// Handler receives one message. Handlers of one session run one at a time,
// in arrival order, on the client's receive path: they must not block for
// long, and must not wait on a Publish (its acknowledgement arrives on the
// same path).
type Handler func(topic string, payload []byte)

// Will is the message the broker publishes when the session dies.
type Will struct {
	Topic    string
	Payload  []byte
	Retained bool
}

// Options configure a Session.
type Options struct {
	// Broker is the broker URL: tcp://host:port, ssl://host:port or mqtt://host:port.
	Broker   string
	ClientID string
	Username string
	Password string
	TLS      *tls.Config
	Will     *Will
	// OnConnect runs after every successful (re)connect, once the
	// subscriptions are in place. It runs in the session's goroutine.
	OnConnect func(ctx context.Context)
	// OnDisconnect runs when an established connection is lost.
	OnDisconnect func(err error)

	KeepAlive      time.Duration // default 30 s
	ConnectTimeout time.Duration // default 10 s
	AckTimeout     time.Duration // default 10 s
	// BackoffMin and BackoffMax bound the reconnect delay (defaults 500 ms
	// and 30 s). Each delay is drawn uniformly from [0, min(max, min·2ⁿ)].
	BackoffMin time.Duration
	BackoffMax time.Duration
	// RefusedBackoffMax bounds the delay after the broker refused the
	// session (ErrRefused) instead of BackoffMax (default BackoffMax).
	RefusedBackoffMax time.Duration
	Logger            *slog.Logger
}

type subscription struct {
	filter  string
	qos     byte
	handler Handler
}

// Session is one client's MQTT session.
type Session struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	subs   []subscription
	client mqtt.Client

	connected atomic.Bool
	connects  atomic.Uint64
}

// New returns a session; call Run to connect.
func New(opts Options) *Session {
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 30 * time.Second
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = 10 * time.Second
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = 500 * time.Millisecond
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 30 * time.Second
	}
	if opts.RefusedBackoffMax <= 0 {
		opts.RefusedBackoffMax = opts.BackoffMax
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Session{opts: opts, log: opts.Logger.With("broker", opts.Broker, "client", opts.ClientID)}
}

// Subscribe registers a subscription. It takes effect on the next connect;
// call it before Run.
func (s *Session) Subscribe(filter string, qos byte, h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs = append(s.subs, subscription{filter: filter, qos: qos, handler: h})
}

// Connected reports whether the session is up.
func (s *Session) Connected() bool { return s.connected.Load() }

// Connects counts successful connects so far.
func (s *Session) Connects() uint64 { return s.connects.Load() }

// Run connects and keeps the session up until ctx ends.
func (s *Session) Run(ctx context.Context) error {
	lost := make(chan error, 1)
	client := mqtt.NewClient(s.clientOptions(lost))
	s.mu.Lock()
	s.client = client
	s.mu.Unlock()
	defer func() {
		s.connected.Store(false)
		if client.IsConnectionOpen() {
			client.Disconnect(250)
		}
	}()

	var (
		attempt int
		delay   time.Duration // before the next attempt
		failing failureLog
	)
	for {
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		// A loss reported after the last wait for one belongs to a
		// connection this loop no longer has.
		select {
		case <-lost:
		default:
		}
		if err := s.connect(ctx, client); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			attempt++
			ceiling := s.opts.BackoffMax
			if errors.Is(err, ErrRefused) {
				ceiling = s.opts.RefusedBackoffMax
			}
			delay = Backoff(attempt, s.opts.BackoffMin, ceiling)
			failing.log(s.log, attempt, backoffCeiling(attempt, s.opts.BackoffMin, ceiling), delay, err)
			continue
		}
		attempt, delay, failing = 0, 0, failureLog{}
		s.connected.Store(true)
		s.connects.Add(1)
		s.log.Info("connected")
		if s.opts.OnConnect != nil {
			s.opts.OnConnect(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-lost:
			s.connected.Store(false)
			s.log.Warn("connection lost", "err", err)
			if s.opts.OnDisconnect != nil {
				s.opts.OnDisconnect(err)
			}
			attempt = 1
			delay = Backoff(attempt, s.opts.BackoffMin, s.opts.BackoffMax)
		}
	}
}

// failureLog logs a run of failed connects once per back-off step: when
// the delay's ceiling grows, or the failure changes between refused and
// unreachable. At the ceiling the repeats go to debug, so that a broker
// down for a day does not fill the log, while a refusal, whose ceiling is
// high, is logged at each of its few attempts.
type failureLog struct {
	ceiling time.Duration
	refused bool
}

func (f *failureLog) log(log *slog.Logger, attempt int, ceiling, retryIn time.Duration, err error) {
	refused := errors.Is(err, ErrRefused)
	step := ceiling != f.ceiling || refused != f.refused
	f.ceiling, f.refused = ceiling, refused
	switch {
	case !step:
		log.Debug("connect failed", "attempt", attempt, "retryIn", retryIn.Round(time.Millisecond), "err", err)
	case refused:
		log.Warn("broker refused the connection: credentials or certificate not accepted (revoked?)",
			"attempt", attempt, "retryIn", retryIn.Round(time.Millisecond), "err", err)
	default:
		log.Warn("cannot connect to the broker", "attempt", attempt, "retryIn", retryIn.Round(time.Millisecond), "err", err)
	}
}

func (s *Session) clientOptions(lost chan<- error) *mqtt.ClientOptions {
	o := mqtt.NewClientOptions().
		AddBroker(s.opts.Broker).
		SetClientID(s.opts.ClientID).
		SetCleanSession(true).
		// 3.1.1 only: paho would otherwise retry a refused CONNECT as 3.1,
		// a second connection to be refused again.
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(s.opts.KeepAlive).
		SetPingTimeout(min(s.opts.ConnectTimeout, s.opts.KeepAlive)).
		SetConnectTimeout(s.opts.ConnectTimeout).
		SetWriteTimeout(s.opts.AckTimeout).
		SetOrderMatters(true).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	if s.opts.Username != "" {
		o.SetUsername(s.opts.Username).SetPassword(s.opts.Password)
	}
	if s.opts.TLS != nil {
		o.SetTLSConfig(s.opts.TLS)
	}
	if w := s.opts.Will; w != nil {
		o.SetBinaryWill(w.Topic, w.Payload, 1, w.Retained)
	}
	return o
}

func (s *Session) connect(ctx context.Context, client mqtt.Client) error {
	if err := wait(ctx, client.Connect(), s.opts.ConnectTimeout); err != nil {
		// paho's own attempt may still finish after this wait gave up
		// (a CONNACK a moment late, from a busy broker). It would then hold
		// a live connection that this session never subscribes on, and
		// refuse every later Connect as "already connected": the agent
		// would stay silent until the broker dropped that connection.
		client.Disconnect(0)
		if refused(err) {
			return fmt.Errorf("connect to %s: %w: %w", s.opts.Broker, ErrRefused, err)
		}
		return fmt.Errorf("connect to %s: %w", s.opts.Broker, err)
	}
	s.mu.Lock()
	subs := append([]subscription(nil), s.subs...)
	s.mu.Unlock()
	for _, sub := range subs {
		h := sub.handler
		tok := client.Subscribe(sub.filter, sub.qos, func(_ mqtt.Client, m mqtt.Message) { h(m.Topic(), m.Payload()) })
		if err := wait(ctx, tok, s.opts.AckTimeout); err != nil {
			client.Disconnect(0)
			return fmt.Errorf("subscribe %s: %w", sub.filter, err)
		}
		if st, ok := tok.(*mqtt.SubscribeToken); ok {
			for filter, code := range st.Result() {
				if code == 0x80 {
					client.Disconnect(0)
					return fmt.Errorf("subscribe %s: %w", filter, ErrRefused)
				}
			}
		}
	}
	return nil
}

// Publish sends one message and waits for the broker's acknowledgement
// (QoS 1) or for the write (QoS 0).
func (s *Session) Publish(ctx context.Context, topic string, qos byte, retained bool, payload []byte) error {
	s.mu.Lock()
	client := s.client
	s.mu.Unlock()
	if client == nil || !s.connected.Load() {
		return ErrNotConnected
	}
	if err := wait(ctx, client.Publish(topic, qos, retained, payload), s.opts.AckTimeout); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

// Message is one message of a batch.
type Message struct {
	Topic    string
	QoS      byte
	Retained bool
	Payload  []byte
}

// PublishBatch sends msgs in order without waiting between them, then
// waits for the broker's acknowledgements, and returns how many leading
// messages were acknowledged: a caller that deletes only those and resends
// the rest never loses or reorders a message.
func (s *Session) PublishBatch(ctx context.Context, msgs []Message) (int, error) {
	s.mu.Lock()
	client := s.client
	s.mu.Unlock()
	if client == nil || !s.connected.Load() {
		return 0, ErrNotConnected
	}
	toks := make([]mqtt.Token, len(msgs))
	for i, m := range msgs {
		toks[i] = client.Publish(m.Topic, m.QoS, m.Retained, m.Payload)
	}
	for i, tok := range toks {
		if err := wait(ctx, tok, s.opts.AckTimeout); err != nil {
			return i, fmt.Errorf("publish %s: %w", msgs[i].Topic, err)
		}
	}
	return len(msgs), nil
}

// wait waits for a paho token, ctx or the timeout.
func wait(ctx context.Context, tok mqtt.Token, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("no answer from the broker within %s", timeout)
	}
}

// refused reports whether a failed connect was the broker's refusal: a
// CONNACK refusing the client's identity or credentials, or a TLS alert
// the broker sent during the handshake (crypto/tls reports a received
// alert as a *net.OpError whose Op is "remote error").
func refused(err error) bool {
	if errors.Is(err, packets.ErrorRefusedNotAuthorised) || errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) ||
		errors.Is(err, packets.ErrorRefusedIDRejected) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}

// Backoff returns the delay before reconnect attempt n (n ≥ 1): uniform in
// [0, min(max, min·2ⁿ⁻¹)] ("full jitter").
func Backoff(n int, min, max time.Duration) time.Duration {
	return time.Duration(rand.Int64N(int64(backoffCeiling(n, min, max)) + 1))
}

// backoffCeiling is min(max, min·2ⁿ⁻¹).
func backoffCeiling(n int, min, max time.Duration) time.Duration {
	ceiling := min
	for i := 1; i < n && ceiling < max; i++ {
		ceiling *= 2
	}
	if ceiling > max {
		ceiling = max
	}
	return ceiling
}
