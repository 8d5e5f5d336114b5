// Package sfu is the forwarding core of the selective forwarding unit that
// runs at the gateway: it takes the media packets a publisher sends for a
// track (JSP §13.1) and hands each subscriber its own copy, without decoding
// and without network I/O of its own. The session layer feeds it packets and
// NACKs and drains each subscriber's queue.
//
//	publisher packets (layer, media packet)
//	  -> Track.WritePacket: checks, packet cache per layer (answers NACKs),
//	     audio level -> active-speaker detector
//	  -> for each DownTrack (one per subscriber of the track):
//	       simulcast.Selector: forward this layer? switch at key frames;
//	         asks for a key frame, which the Track rate-limits per layer
//	       simulcast.Rewriter: the subscriber's own seq/timestamp space
//	       bounded queue, oldest dropped when full
//	  -> the subscriber's writer goroutine: DownTrack.Receive -> SendFlow
//	subscriber NACK (outgoing seqs) -> DownTrack.OnNack: token bucket,
//	  Rewriter.Lookup -> Track cache -> resent with R set, same seq/ts
//
// Nothing in the publishing path waits on a subscriber: a subscriber that
// does not read loses its own oldest packets and nobody else's.
//
// FEC parity from the publisher is not forwarded: it protects the
// publisher's path, and its group numbers mean nothing in a subscriber's
// rewritten space. A subscriber with FEC gets parity of its own, computed
// after rewriting and shaped by its own receiver reports (fec.go).
//
// Lock order: Track.mu, then DownTrack.mu, then the queue's lock; the
// key-frame limiter's lock, the speaker detector's lock and the retired
// counters' lock are taken with none of the others held.
package sfu

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/media/audiolevel"
	"github.com/jetstreamproto/jsp/reliability/fec"
	"github.com/jetstreamproto/jsp/reliability/nack"
)

// Defaults for zero [Config] fields.
const (
	// DefaultMaxTracks caps the tracks one forwarder holds.
	DefaultMaxTracks = 1000
	// DefaultMaxSubscribers caps the subscribers of one track.
	DefaultMaxSubscribers = 1000
	// DefaultQueuePackets is a subscriber's queue per track: about 0.5 s
	// of 2.5 Mbit/s video in 1,000-byte packets, 10 s of 50 packet/s
	// audio.
	DefaultQueuePackets = 256
	// DefaultMaxPacketSize caps a media packet: one datagram's room
	// (JSP §13.10).
	DefaultMaxPacketSize = fec.MaxPacketSize
	// DefaultKeyFrameInterval is the least time between two key-frame
	// requests to a publisher for one layer: a key frame costs several
	// inter frames, and one answers every subscriber waiting for it.
	DefaultKeyFrameInterval = 500 * time.Millisecond
	// DefaultNackRate is the retransmissions per second one subscriber
	// may trigger, with DefaultNackBurst at once: a NACK storm costs the
	// subscriber its repairs, not the forwarder its time.
	DefaultNackRate  = 500
	DefaultNackBurst = 200
	// MaxNackSeqs is the most numbers one OnNack call looks at (the NACK
	// message's limit, JSP §5.6); the rest are ignored and counted.
	MaxNackSeqs = 1024
)

// Config configures a [Forwarder]. Zero fields take their defaults.
type Config struct {
	// MaxTracks caps published tracks. Default DefaultMaxTracks.
	MaxTracks int
	// MaxSubscribers caps the subscribers of one track. Default
	// DefaultMaxSubscribers.
	MaxSubscribers int
	// QueuePackets is each subscriber's queue length. Default
	// DefaultQueuePackets.
	QueuePackets int
	// MaxPacketSize caps a published packet. Default
	// DefaultMaxPacketSize.
	MaxPacketSize int
	// Cache bounds each layer's packet cache. Defaults: nack's (1024
	// packets, 2 MiB, 500 ms).
	Cache nack.CacheConfig
	// KeyFrameInterval spaces key-frame requests per track layer.
	// Default DefaultKeyFrameInterval.
	KeyFrameInterval time.Duration
	// NackRate and NackBurst bound retransmissions per subscriber and
	// track. Defaults DefaultNackRate and DefaultNackBurst.
	NackRate, NackBurst int
	// FEC configures the parity of subscribers that have FEC on.
	FEC FECConfig
	// Speakers configures the active-speaker detector.
	Speakers audiolevel.Config
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.MaxTracks, DefaultMaxTracks)
	def(&c.MaxSubscribers, DefaultMaxSubscribers)
	def(&c.QueuePackets, DefaultQueuePackets)
	def(&c.MaxPacketSize, DefaultMaxPacketSize)
	def(&c.NackRate, DefaultNackRate)
	def(&c.NackBurst, DefaultNackBurst)
	if c.KeyFrameInterval == 0 {
		c.KeyFrameInterval = DefaultKeyFrameInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.FEC.setDefaults()
}

func (c *Config) validate() error {
	switch {
	case c.MaxTracks < 1 || c.MaxSubscribers < 1 || c.QueuePackets < 1 || c.NackRate < 1 || c.NackBurst < 1:
		return fmt.Errorf("sfu: count limits below 1 in %+v", *c)
	case c.MaxPacketSize < 8:
		return fmt.Errorf("sfu: MaxPacketSize %d below a media header", c.MaxPacketSize)
	case c.KeyFrameInterval < 0:
		return fmt.Errorf("sfu: negative KeyFrameInterval")
	}
	return c.FEC.validate()
}

// Forwarder holds the tracks of the media flows that meet at one gateway.
type Forwarder struct {
	cfg Config

	mu     sync.Mutex
	tracks map[TrackID]*Track // guarded by mu

	spkMu    sync.Mutex
	speakers *audiolevel.Detector // guarded by spkMu

	malformed atomic.Uint64

	retMu   sync.Mutex
	retired totals // guarded by retMu: counters of tracks and down tracks that left
}

// New returns a forwarder.
func New(cfg Config) (*Forwarder, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// Check the cache bounds once, here, rather than per layer later.
	if _, err := nack.NewCache(cfg.Cache); err != nil {
		return nil, fmt.Errorf("sfu: %w", err)
	}
	det, err := audiolevel.New(cfg.Speakers)
	if err != nil {
		return nil, fmt.Errorf("sfu: %w", err)
	}
	return &Forwarder{cfg: cfg, tracks: map[TrackID]*Track{}, speakers: det}, nil
}

// Publish adds a track.
func (f *Forwarder) Publish(tc TrackConfig) (*Track, error) {
	t, err := newTrack(f, tc)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.tracks[tc.ID]; ok {
		return nil, jsperr.Newf(jsperr.TrackExists, "sfu: track %q already published", tc.ID)
	}
	if len(f.tracks) >= f.cfg.MaxTracks {
		return nil, jsperr.Newf(jsperr.TooManyTracks, "sfu: %d tracks published, limit %d", len(f.tracks), f.cfg.MaxTracks)
	}
	f.tracks[tc.ID] = t
	return t, nil
}

// Track returns a published track.
func (f *Forwarder) Track(id TrackID) (*Track, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tracks[id]
	if !ok {
		return nil, jsperr.Newf(jsperr.TrackNotFound, "sfu: no track %q", id)
	}
	return t, nil
}

// Unpublish removes a track and closes its down tracks; their Receive
// returns what is queued, then ErrClosed.
func (f *Forwarder) Unpublish(id TrackID) error {
	f.mu.Lock()
	t, ok := f.tracks[id]
	delete(f.tracks, id)
	f.mu.Unlock()
	if !ok {
		return jsperr.Newf(jsperr.TrackNotFound, "sfu: no track %q", id)
	}
	t.close()
	f.retireTrack(t.Stats())
	if t.cfg.Participant != "" {
		f.spkMu.Lock()
		f.speakers.Remove(t.cfg.Participant)
		f.spkMu.Unlock()
	}
	return nil
}

// Subscribe adds a subscriber to a track.
func (f *Forwarder) Subscribe(id TrackID, sc SubscriberConfig) (*DownTrack, error) {
	t, err := f.Track(id)
	if err != nil {
		return nil, err
	}
	return t.subscribe(sc)
}

// Speakers returns the active speakers (participants, loudest first) and
// whether the list changed since it was last reported as changed.
func (f *Forwarder) Speakers() ([]audiolevel.Speaker, bool) {
	f.spkMu.Lock()
	defer f.spkMu.Unlock()
	return f.speakers.Update(f.cfg.Now())
}

func (f *Forwarder) observeLevel(participant string, level uint8, voice bool, d time.Duration, now time.Time) {
	f.spkMu.Lock()
	// Past the participant cap the level is ignored: forwarding goes on.
	_ = f.speakers.Observe(participant, level, voice, d, now)
	f.spkMu.Unlock()
}

// Stats is a snapshot of forwarder-wide counters.
type Stats struct {
	Tracks    int
	Malformed uint64 // packets refused by WritePacket, all tracks
}

// Stats returns the forwarder's counters.
func (f *Forwarder) Stats() Stats {
	f.mu.Lock()
	n := len(f.tracks)
	f.mu.Unlock()
	return Stats{Tracks: n, Malformed: f.malformed.Load()}
}

// layerCount returns the layers of a track config (audio and plain video:
// one).
func layerCount(tc TrackConfig) int { return max(len(tc.Layers), 1) }
