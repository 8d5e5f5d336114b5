package natsbus

import (
	"fmt"

	"github.com/jetstreamproto/jsp/server/bus"
)

var _ bus.NoEchoOpener = (*Bus)(nil)

// OpenNoEcho implements bus.NoEchoOpener: a second connection to the same
// servers (in-process for an embedded server), with b's credentials, TLS
// and limits, named name, whose subscriptions never receive what it
// published itself (decision D44). Closing it leaves b and an embedded
// server running; close it before b.
func (b *Bus) OpenNoEcho(name string) (bus.Bus, error) {
	cfg := b.cfg
	if name != "" {
		cfg.Name = name
	}
	nb, err := dial(b.urls, b.srv, cfg, true)
	if err != nil {
		return nil, fmt.Errorf("natsbus: no-echo connection: %w", err)
	}
	return nb, nil
}
