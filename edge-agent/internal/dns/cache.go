package dns

import (
	"container/list"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
)

// The cache of forwarded answers: bounded in entries (least recently used
// out first), each kept for its TTL at most, and served with its TTLs
// counted down.
const (
	// maxPositiveTTL and maxNegativeTTL cap how long an answer, and a
	// "no such name" or "no such record", are kept, whatever the upstream
	// said.
	maxPositiveTTL = time.Hour
	maxNegativeTTL = 5 * time.Minute
)

type cacheKey struct {
	name         string // lower case
	qtype, class uint16
	do, cd       bool // DNSSEC OK and Checking Disabled change the answer
}

type cacheEntry struct {
	key     cacheKey
	msg     *mdns.Msg // as received, without OPT; never changed
	stored  time.Time
	expires time.Time
}

type cache struct {
	size  int
	mu    sync.Mutex
	lru   *list.List // of *cacheEntry, most recently used first
	byKey map[cacheKey]*list.Element
}

func newCache(size int) *cache {
	return &cache{size: size, lru: list.New(), byKey: make(map[cacheKey]*list.Element, size)}
}

// get returns a copy of the answer for key, its TTLs less its age, or nil.
func (c *cache) get(key cacheKey, now time.Time) *mdns.Msg {
	if c.size <= 0 {
		return nil
	}
	c.mu.Lock()
	el, ok := c.byKey[key]
	if !ok {
		c.mu.Unlock()
		return nil
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.lru.Remove(el)
		delete(c.byKey, key)
		c.mu.Unlock()
		return nil
	}
	c.lru.MoveToFront(el)
	c.mu.Unlock()

	m := e.msg.Copy()
	age := uint32(now.Sub(e.stored) / time.Second)
	for _, section := range [][]mdns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range section {
			h := rr.Header()
			if h.Ttl > age {
				h.Ttl -= age
			} else {
				h.Ttl = 0
			}
		}
	}
	return m
}

// put keeps m (which must not change afterwards) for its TTL, if it is an
// answer worth keeping.
func (c *cache) put(key cacheKey, m *mdns.Msg, now time.Time) {
	if c.size <= 0 {
		return
	}
	ttl := cacheTTL(m)
	if ttl <= 0 {
		return
	}
	e := &cacheEntry{key: key, msg: m, stored: now, expires: now.Add(ttl)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[key]; ok {
		el.Value = e
		c.lru.MoveToFront(el)
		return
	}
	c.byKey[key] = c.lru.PushFront(e)
	for c.lru.Len() > c.size {
		last := c.lru.Back()
		c.lru.Remove(last)
		delete(c.byKey, last.Value.(*cacheEntry).key)
	}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// cacheTTL is how long m may be kept: the smallest TTL of its records for
// an answer; for a negative answer (NXDOMAIN, or NOERROR with no answer)
// the SOA's, as RFC 2308 says, or nothing without a SOA; nothing for
// failures and truncated answers.
func cacheTTL(m *mdns.Msg) time.Duration {
	if m.Truncated {
		return 0
	}
	switch {
	case m.Rcode == mdns.RcodeSuccess && len(m.Answer) > 0:
		ttl := uint32(maxPositiveTTL / time.Second)
		for _, section := range [][]mdns.RR{m.Answer, m.Ns, m.Extra} {
			for _, rr := range section {
				if rr.Header().Rrtype != mdns.TypeOPT {
					ttl = min(ttl, rr.Header().Ttl)
				}
			}
		}
		return time.Duration(ttl) * time.Second
	case m.Rcode == mdns.RcodeSuccess || m.Rcode == mdns.RcodeNameError:
		for _, rr := range m.Ns {
			if soa, ok := rr.(*mdns.SOA); ok {
				ttl := min(soa.Hdr.Ttl, soa.Minttl, uint32(maxNegativeTTL/time.Second))
				return time.Duration(ttl) * time.Second
			}
		}
	}
	return 0
}
