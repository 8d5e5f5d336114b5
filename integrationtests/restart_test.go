package integrationtests

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"
)

// restartWithoutQuorum brings the stopped deployment back the hard way: one
// NATS node first, then the cores, which find JetStream without a quorum
// (no meta leader, no stream leaders, every resource has three replicas).
// Each core must stay up and report not ready on /readyz, naming a
// JetStream resource, which it does only after its first request timed out
// or was refused; only then do the two other NATS nodes start, and the
// cores open. A core that gave up on the first "not ready" answer exits
// here, and the test fails with its output.
func (d *deployment) restartWithoutQuorum() {
	t := d.t
	if err := d.nats[0].startErr("nats node ready"); err != nil {
		t.Fatal(err)
	}
	started := make([]chan error, len(d.cores))
	for i, p := range d.cores {
		started[i] = make(chan error, 1)
		go func() { started[i] <- p.startErr("role core") }()
	}
	for i, p := range d.cores {
		eventually(t, 30*time.Second, p.name+" waits for JetStream", func() bool {
			select {
			case err := <-started[i]:
				if err == nil {
					err = errors.New("it was ready without a quorum")
				}
				t.Fatalf("%s while NATS had no quorum: %v", p.name, err)
			default:
			}
			code, body, err := httpGet(context.Background(), d.coreOps[i], "/readyz")
			return err == nil && code == 503 && strings.Contains(body, "JetStream not ready")
		})
	}
	t.Logf("cores wait for JetStream without a quorum")
	others := make([]error, 2)
	var wg sync.WaitGroup
	for i, p := range d.nats[1:] {
		wg.Go(func() { others[i] = p.startErr("nats node ready") })
	}
	wg.Wait()
	if err := errors.Join(others...); err != nil {
		t.Fatal(err)
	}
	for i, p := range d.cores {
		if err := <-started[i]; err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, p.name+" ready", func() bool {
			code, _, err := httpGet(context.Background(), d.coreOps[i], "/readyz")
			return err == nil && code == 200
		})
	}
}
