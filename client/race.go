package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/transport"
)

// attempt is one contender of a connection race.
type attempt[T any] struct {
	kind transport.Kind
	// headStart is how long the previous attempt runs alone before this one
	// starts. An attempt also starts as soon as every earlier one has
	// failed.
	headStart time.Duration
	// dial connects and completes the JSP handshake. It must return soon
	// after ctx is cancelled.
	dial func(ctx context.Context) (T, error)
}

// raceResult is what one attempt produced.
type raceResult[T any] struct {
	i   int
	v   T
	err error
}

// race runs attempts the happy-eyeballs way (RFC 8305, adapted to JSP's
// QUIC-then-TCP preference, ARCHITECTURE §2): attempt 0 starts at once, each
// later one after its head start or when all earlier ones have failed. The
// first attempt to succeed wins; the others are cancelled, and any that
// succeeded anyway are handed to discard. fatal classifies errors that end
// the whole race (a pinned key mismatch will not get better over another
// transport). race returns only after every attempt has returned, so it
// leaves no goroutine behind.
func race[T any](ctx context.Context, attempts []attempt[T], fatal func(error) bool, discard func(T)) (T, transport.Kind, error) {
	var zero T
	if len(attempts) == 0 {
		return zero, "", errors.New("client: nothing to dial")
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()

	results := make(chan raceResult[T], len(attempts))
	var wg sync.WaitGroup
	started := 0
	var next *time.Timer
	startNext := func() {
		i := started
		started++
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := attempts[i].dial(rctx)
			results <- raceResult[T]{i: i, v: v, err: err}
		}()
		if next != nil {
			next.Stop()
			next = nil
		}
		if started < len(attempts) {
			next = time.NewTimer(attempts[started].headStart)
		}
	}
	startNext()

	errs := make([]error, len(attempts))
	winner, failed := -1, 0
	var win T
	var final error
loop:
	for {
		var tick <-chan time.Time
		if next != nil {
			tick = next.C
		}
		select {
		case r := <-results:
			if r.err == nil {
				winner, win = r.i, r.v
				break loop
			}
			errs[r.i] = fmt.Errorf("%s: %w", attempts[r.i].kind, r.err)
			failed++
			if fatal != nil && fatal(r.err) {
				final = errs[r.i]
				break loop
			}
			if failed == len(attempts) {
				break loop
			}
			if failed == started {
				// Everything started so far failed: skip the wait.
				startNext()
			}
		case <-tick:
			next = nil
			startNext()
		case <-ctx.Done():
			final = context.Cause(ctx)
			break loop
		}
	}
	if next != nil {
		next.Stop()
	}
	cancel()
	wg.Wait()
	close(results)
	for r := range results {
		if r.err == nil {
			// A loser that completed its handshake after the winner.
			discard(r.v)
		}
	}
	switch {
	case winner >= 0:
		return win, attempts[winner].kind, nil
	case final != nil:
		return zero, "", final
	default:
		return zero, "", errors.Join(errs...)
	}
}
