package core

import (
	"context"
	"fmt"
	"io"
)

// WriteMetrics writes the core's counters in the Prometheus text format
// (version 0.0.4).
func (c *Core) WriteMetrics(w io.Writer) error {
	s := c.Stats()
	_, err := fmt.Fprintf(w, `# HELP jsp_core_requests_total Requests the core served.
# TYPE jsp_core_requests_total counter
jsp_core_requests_total %d
# HELP jsp_core_published_total Messages committed and published.
# TYPE jsp_core_published_total counter
jsp_core_published_total %d
# HELP jsp_core_duplicates_total Resends answered with the original sequence number.
# TYPE jsp_core_duplicates_total counter
jsp_core_duplicates_total %d
# HELP jsp_core_failed_total Requests answered with an error code.
# TYPE jsp_core_failed_total counter
jsp_core_failed_total %d
# HELP jsp_core_store_errors_total Requests that failed in storage with an internal error.
# TYPE jsp_core_store_errors_total counter
jsp_core_store_errors_total %d
`, s.Requests, s.Published, s.Duplicates, s.Failed, s.StoreErrors)
	return err
}

// Shutdown stops taking requests and waits until the requests in progress
// are answered or ctx ends, then closes as Close does: a rolling restart
// of a core loses no commit it had started.
func (c *Core) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	c.draining = true
	c.unsubscribeLocked()
	c.mu.Unlock()
	done := make(chan struct{})
	go func() {
		c.handlers.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	_ = c.Close()
	<-done
	return err
}
