package natsbus

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetstreamproto/jsp/server/bus"
)

// Opening a JetStream resource (a KV bucket, the event log, a work queue
// or its consumer) retries while the servers answer "not now": a cluster
// that has just (re)started elects a meta leader and then a leader per
// stream, and until then requests time out or are refused as unavailable.
// The retries end at the first success, at a permanent refusal, when the
// caller's context ends, or after ClientConfig.OpenWait.
const (
	// DefaultOpenWait bounds the retries of one open when ClientConfig
	// leaves OpenWait zero: long enough for a restarted cluster to elect
	// its leaders, short enough that a node that cannot start says so.
	DefaultOpenWait = 2 * time.Minute
	// openRetryMin is the first pause between attempts; it doubles up to
	// openRetryMax (with jitter, so that the nodes of a restarted
	// deployment do not retry in step).
	openRetryMin = 200 * time.Millisecond
	openRetryMax = 2 * time.Second
	// openLogEvery is the least time between two "still retrying" log
	// lines of one open; the first failure is always logged.
	openLogEvery = 10 * time.Second
)

// ErrNotReady is wrapped when a JetStream resource did not open within
// ClientConfig.OpenWait because the servers kept answering with
// transient errors; the error names the resource and the last cause.
var ErrNotReady = errors.New("natsbus: JetStream resource not ready")

// ErrRefused is wrapped when the servers refused to create or update a
// JetStream resource for good (a configuration the existing one
// contradicts, more replicas than the cluster has, permissions): retrying
// would not help, the configuration has to change.
var ErrRefused = errors.New("natsbus: JetStream refused the resource")

// JetStream API error codes the retry treats as "not now".
const (
	codeClusterNoPeers      = 10005 // no suitable peers for placement (peer offline)
	codeClusterNotAvail     = 10008 // JetStream system temporarily unavailable
	codeClusterNotLeader    = 10009 // JetStream cluster can not handle request
	codeInsufficientRes     = 10023 // insufficient resources (peers down)
	codeJSNotEnabled        = 10076 // JetStream not enabled (yet, on a starting server)
	codeStreamOffline       = 10118
	codeConsumerOffline     = 10119
	codeStreamOfflineWhy    = 10194
	codeConsumerOfflineWhy  = 10195
	codeMemberChangeFlight  = 10202 // cluster member change in progress
	codeServiceUnavailable  = 503   // HTTP-like status of "unavailable" answers
	offlinePeerPlacementMsg = "peer offline"
)

// transient reports whether err from a JetStream API call may go away by
// itself: no answer (timeout, no responders, connection being
// re-established) or an answer that says the cluster cannot serve the
// request yet (no leader, peers offline, insufficient resources while
// peers are down).
func transient(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, bus.ErrClosed), errors.Is(err, bus.ErrPermission):
		return false
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, bus.ErrNoResponders), errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return true
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case codeClusterNotAvail, codeClusterNotLeader, codeInsufficientRes, codeJSNotEnabled,
		codeStreamOffline, codeConsumerOffline, codeStreamOfflineWhy, codeConsumerOfflineWhy,
		codeMemberChangeFlight:
		return true
	case codeClusterNoPeers:
		// Placement fails for good when the cluster is too small, and for
		// now when some of its peers are down.
		return strings.Contains(apiErr.Description, offlinePeerPlacementMsg)
	}
	return apiErr.Code == codeServiceUnavailable
}

// openBackoff is the pause before attempt n+1 (n counts from 1): doubling
// from openRetryMin to openRetryMax, with up to a quarter of jitter.
func openBackoff(n int, jitter func(int64) int64) time.Duration {
	d := openRetryMin
	for i := 1; i < n && d < openRetryMax; i++ {
		d *= 2
	}
	d = min(d, openRetryMax)
	return d + time.Duration(jitter(int64(d/4)+1))
}

// openFirstAttempt bounds the first attempt of an open; each later one
// gets twice the time of the one before, up to OpenAttemptTimeout. A
// healthy cluster answers in milliseconds, so a short first attempt finds
// a leaderless one quickly (and /readyz says so); the longer later ones
// leave a loaded cluster time to create a replicated stream. An attempt
// that timed out after the servers did the work is harmless: the next one
// finds the stream and updates it to the same configuration.
const openFirstAttempt = time.Second

// openAttemptTimeout is the deadline of attempt n (from 1).
func openAttemptTimeout(n int, limit time.Duration) time.Duration {
	d := openFirstAttempt
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// open runs attempt until it succeeds, fails for good, ctx ends or the
// bus's OpenWait has passed. Each attempt gets its own deadline
// (openAttemptTimeout, or less when ctx or the wait ends sooner), so that
// a request lost in a cluster without leaders does not use up the wait. While it
// retries, the resource is listed by Opening, so /readyz reports the node
// not ready, and the failures are logged: the first, then at most one
// line per openLogEvery.
func (b *Bus) open(ctx context.Context, what string, attempt func(ctx context.Context) error) error {
	start := time.Now()
	deadline := start.Add(b.cfg.OpenWait)
	defer b.setOpening(what, nil)
	var lastLog time.Time
	for n := 1; ; n++ {
		ad := time.Now().Add(openAttemptTimeout(n, b.cfg.OpenAttemptTimeout))
		if deadline.Before(ad) {
			ad = deadline
		}
		actx, cancel := context.WithDeadline(ctx, ad)
		err := attempt(actx)
		cancel()
		if err == nil {
			if n > 1 {
				b.log.Info("natsbus: opened after retries", "resource", what, "attempts", n,
					"took", time.Now().Sub(start).Round(time.Millisecond))
			}
			return nil
		}
		err = mapErr(err)
		if ctx.Err() != nil {
			return fmt.Errorf("natsbus: %s: %w (last error: %w)", what, context.Cause(ctx), err)
		}
		if !transient(err) {
			return fmt.Errorf("%w: %s: %w", ErrRefused, what, err)
		}
		now := time.Now()
		if !now.Before(deadline) {
			return fmt.Errorf("%w: %s not open after %v and %d attempts: last error: %w",
				ErrNotReady, what, b.cfg.OpenWait, n, err)
		}
		b.setOpening(what, err)
		if lastLog.IsZero() || now.Sub(lastLog) >= openLogEvery {
			lastLog = now
			b.log.Warn("natsbus: JetStream not ready; retrying", "resource", what, "attempt", n,
				"waited", now.Sub(start).Round(time.Millisecond), "wait_limit", b.cfg.OpenWait, "err", err)
		}
		t := time.NewTimer(min(openBackoff(n, rand.Int64N), deadline.Sub(now)))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("natsbus: %s: %w (last error: %w)", what, context.Cause(ctx), err)
		case <-t.C:
		}
	}
}

// setOpening records err as the reason what is not open yet; nil removes
// the record.
func (b *Bus) setOpening(what string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		delete(b.opening, what)
		return
	}
	b.opening[what] = err
}

// Opening lists the JetStream resources whose open is retrying, each with
// its last error, in name order; empty when none is.
func (b *Bus) Opening() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.opening))
	for what, err := range b.opening {
		out = append(out, what+": "+err.Error())
	}
	slices.Sort(out)
	return out
}
