package client

import (
	"slices"
	"sync"
	"time"
)

// Gateway choice on reconnect (JSP §5.2, §11.6; docs/operations.md §4).
//
// The client keeps a book of the gateways it knows: the Dial URL, the
// fallbacks, and the gateways the server listed in WELCOME (a cluster's
// live gateways, least loaded first). Each entry remembers how the last
// attempts went and the round-trip time measured on its last session
// (the session's smoothed RTT, or the handshake time before any PING).
// A reconnect tries, in order:
//
//  1. after GOAWAY, the alternatives the draining server named;
//  2. healthy gateways (no failure since their last success), the lowest
//     measured RTT first, then the ones never tried in the order the
//     server listed them;
//  3. gateways that failed, the longest ago first.
//
// The gateway whose session was just lost counts as failed, so a client
// whose gateway died moves on at once instead of retrying it first.

// maxBookEntries caps the book: WELCOME lists at most 16 gateways
// (wire.MaxGateways), fallbacks are few, so this only stops growth from a
// cluster whose gateway list keeps changing.
const maxBookEntries = 64

// rttWeight is the weight of a new RTT sample in the entry's average.
const rttWeight = 0.5

// GatewayInfo is what the client knows about one gateway address.
type GatewayInfo struct {
	// URL is the address dialled.
	URL string
	// RTT is the measured round-trip time (0: never connected).
	RTT time.Duration
	// Failures counts failed attempts since the last success.
	Failures int
	// LastFailure is when the last attempt failed.
	LastFailure time.Time
	// FromServer reports that a server listed it in WELCOME.
	FromServer bool
}

type gatewayBook struct {
	mu      sync.Mutex
	entries []*GatewayInfo // guarded by mu; in the order learnt
}

func newGatewayBook(urls []string) *gatewayBook {
	b := &gatewayBook{}
	for _, u := range urls {
		b.entries = append(b.entries, &GatewayInfo{URL: u})
	}
	return b
}

func (b *gatewayBook) getLocked(url string) *GatewayInfo {
	for _, e := range b.entries {
		if e.URL == url {
			return e
		}
	}
	return nil
}

// learn adds the gateways a server listed in WELCOME.
func (b *gatewayBook) learn(urls []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, u := range urls {
		if e := b.getLocked(u); e != nil {
			e.FromServer = true
			continue
		}
		if len(b.entries) >= maxBookEntries {
			// Forget the oldest server-listed entry that never worked.
			i := slices.IndexFunc(b.entries, func(e *GatewayInfo) bool { return e.FromServer && e.RTT == 0 })
			if i < 0 {
				return
			}
			b.entries = slices.Delete(b.entries, i, i+1)
		}
		b.entries = append(b.entries, &GatewayInfo{URL: u, FromServer: true})
	}
}

// success records a session on url with a measured round-trip time.
func (b *gatewayBook) success(url string, rtt time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.getLocked(url)
	if e == nil {
		e = &GatewayInfo{URL: url}
		b.entries = append(b.entries, e)
	}
	e.Failures = 0
	if rtt > 0 {
		if e.RTT == 0 {
			e.RTT = rtt
		} else {
			e.RTT = time.Duration(rttWeight*float64(rtt) + (1-rttWeight)*float64(e.RTT))
		}
	}
}

// failure records a failed attempt on url, or the loss of its session.
func (b *gatewayBook) failure(url string, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.getLocked(url); e != nil {
		e.Failures++
		e.LastFailure = now
	}
}

// order returns first, then every other known URL ranked as the package
// comment says, without duplicates.
func (b *gatewayBook) order(first []string) []string {
	b.mu.Lock()
	es := make([]GatewayInfo, len(b.entries))
	for i, e := range b.entries {
		es[i] = *e
	}
	b.mu.Unlock()
	pos := map[string]int{}
	for i, e := range es {
		pos[e.URL] = i
	}
	slices.SortStableFunc(es, func(a, b GatewayInfo) int {
		ha, hb := a.Failures == 0, b.Failures == 0
		switch {
		case ha != hb:
			if ha {
				return -1
			}
			return 1
		case !ha:
			return a.LastFailure.Compare(b.LastFailure)
		case (a.RTT > 0) != (b.RTT > 0):
			if a.RTT > 0 {
				return -1
			}
			return 1
		case a.RTT != b.RTT:
			if a.RTT < b.RTT {
				return -1
			}
			return 1
		}
		return pos[a.URL] - pos[b.URL]
	})
	out := slices.Clone(first)
	for _, e := range es {
		if !slices.Contains(out, e.URL) {
			out = append(out, e.URL)
		}
	}
	return out
}

func (b *gatewayBook) snapshot() []GatewayInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]GatewayInfo, len(b.entries))
	for i, e := range b.entries {
		out[i] = *e
	}
	return out
}

// Gateways returns what the client knows about the gateways it may
// reconnect to: the Dial URL, the fallbacks and the servers' WELCOME
// lists, in the order learnt.
func (c *Client) Gateways() []GatewayInfo { return c.book.snapshot() }

// candidates returns the URLs a reconnect round tries, in order.
func (c *Client) candidates(first []string) []string {
	if c.book == nil {
		// A Client built without its book (tests of the schedule) tries
		// its configured URLs in order.
		return append(slices.Clone(first), c.plan.urls...)
	}
	return c.book.order(first)
}

// configured reports whether url is the Dial URL or a fallback, as
// opposed to an address a server announced.
func (c *Client) configured(url string) bool { return slices.Contains(c.plan.urls, url) }

// noteFailure records a failed attempt on url, or the loss of its session.
func (c *Client) noteFailure(url string) {
	if c.book != nil {
		c.book.failure(url, c.opts.Now())
	}
}

// noteSession records a new session in the book: its measured RTT, and
// the gateways its WELCOME listed (unless ReconnectOptions.IgnoreServerGateways).
func (c *Client) noteSession(l *link) {
	if c.book == nil {
		return
	}
	rtt := l.sess.Stats().SmoothedRTT
	if rtt == 0 {
		rtt = l.handshake
	}
	c.book.success(l.url, rtt)
	if c.opts.Reconnect.IgnoreServerGateways {
		return
	}
	if w := l.sess.Welcome(); w != nil && len(w.Gateways) > 0 {
		c.book.learn(c.alternativeURLs(l.url, w.Gateways))
	}
}

// noteRTT refreshes the RTT of the session in use from its PINGs, so the
// ranking reflects the latest measurement when the session is lost.
func (c *Client) noteRTT(l *link) {
	if c.book == nil {
		return
	}
	if rtt := l.sess.Stats().SmoothedRTT; rtt > 0 {
		c.book.success(l.url, rtt)
	}
}
