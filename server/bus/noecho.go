package bus

import (
	"errors"
	"fmt"
)

// NoEchoOpener is a Bus that can open a second connection to the same bus
// whose subscriptions never receive what was published through that
// connection itself (NATS "no echo"); messages published through any
// other connection, the opener's included, arrive as usual.
//
// A gateway uses one for its channel subscriptions and the live events it
// publishes (decision D44): it hands a live event to its own local
// subscribers directly and publishes it for the other gateways only, so
// the bus does not deliver it back to the gateway that sent it. The core's
// committed events, published through another connection (in one process,
// through the opener itself), still reach the gateway's subscriptions.
type NoEchoOpener interface {
	// OpenNoEcho opens the connection; name names it in monitoring. The
	// caller closes it; closing it leaves the opener open.
	OpenNoEcho(name string) (Bus, error)
}

// ErrNoEcho is wrapped by OpenNoEcho when a bus cannot open a connection
// without echo; callers then use the bus itself and let it echo.
var ErrNoEcho = errors.New("bus: no-echo connection not supported")

// OpenNoEcho opens a no-echo connection of b when b is a [NoEchoOpener],
// and fails with ErrNoEcho otherwise.
func OpenNoEcho(b Bus, name string) (Bus, error) {
	o, ok := b.(NoEchoOpener)
	if !ok {
		return nil, fmt.Errorf("open no-echo connection %q on %T: %w", name, b, ErrNoEcho)
	}
	nb, err := o.OpenNoEcho(name)
	if err != nil {
		return nil, fmt.Errorf("open no-echo connection %q: %w", name, err)
	}
	return nb, nil
}
