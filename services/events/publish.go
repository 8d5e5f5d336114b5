package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
)

// HeaderType carries the event type on the bus message, so a consumer can
// filter before decoding the body.
const HeaderType = "Jsp-Event-Type"

// PublisherConfig configures a Publisher. The zero value is valid.
type PublisherConfig struct {
	// Now stamps events without a time. Default: time.Now.
	Now func() time.Time
	// Rand generates event ids. Default: crypto/rand.Reader.
	Rand io.Reader
}

func (c *PublisherConfig) setDefaults() {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
}

// Publisher appends events to the bus's event log. It is safe for
// concurrent use.
type Publisher struct {
	log bus.EventLog
	cfg PublisherConfig
}

// OpenLog creates or opens the cluster's event log (stream JSP_EVENTS,
// subjects jsp.<cluster>.events.<Token(type)>). mod, when not nil, adjusts
// the limits of subjects.EventLog() before the log is opened; unset
// limits take the bus defaults.
func OpenLog(ctx context.Context, b bus.Bus, subjects bus.Subjects, mod func(*bus.EventLogConfig)) (bus.EventLog, error) {
	cfg := subjects.EventLog()
	if mod != nil {
		mod(&cfg)
	}
	log, err := b.EventLog(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("events: open event log: %w", err)
	}
	return log, nil
}

// NewPublisher returns a publisher appending to log.
func NewPublisher(log bus.EventLog, cfg PublisherConfig) *Publisher {
	cfg.setDefaults()
	return &Publisher{log: log, cfg: cfg}
}

// NewID returns a random 128-bit event id in hex.
func NewID(r io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("events: new id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// Subject returns the bus subject an event of type typ is stored under,
// jsp.<cluster>.events.<Token(typ)>.
func Subject(subjects bus.Subjects, typ string) (string, error) {
	if err := ValidateType(typ); err != nil {
		return "", err
	}
	tok, err := bus.EncodeToken(typ)
	if err != nil {
		return "", fmt.Errorf("events: subject of %s: %w", typ, err)
	}
	return subjects.EventLog().SubjectPrefix + "." + tok, nil
}

// Publish fills a missing ID and Time, validates ev and appends it to the
// log. It returns the event as stored and its sequence number. The bus
// de-duplicates by ID within its duplicate window, so a caller that is
// unsure whether a Publish succeeded repeats it with the same event.
func (p *Publisher) Publish(ctx context.Context, ev Event) (Event, uint64, error) {
	if ev.ID == "" {
		id, err := NewID(p.cfg.Rand)
		if err != nil {
			return Event{}, 0, err
		}
		ev.ID = id
	}
	if ev.Time.IsZero() {
		ev.Time = p.cfg.Now()
	}
	ev.Time = ev.Time.UTC()
	b, err := ev.Encode()
	if err != nil {
		return Event{}, 0, fmt.Errorf("events: publish: %w", err)
	}
	seq, err := p.log.Append(ctx, ev.Type, bus.Msg{
		Header: bus.Header{bus.HeaderMsgID: {ev.ID}, HeaderType: {ev.Type}},
		Data:   b,
	})
	if err != nil {
		return Event{}, 0, fmt.Errorf("events: publish %s %s: %w", ev.Type, ev.ID, err)
	}
	return ev, seq, nil
}
