package audiolevel

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Detector defaults, used for zero [Config] fields.
const (
	// DefaultActiveLevel: audio at -35 dBov or louder counts as speech.
	DefaultActiveLevel = 35
	// DefaultMinActiveFraction of a window's audio must be speech for
	// the window to be active.
	DefaultMinActiveFraction = 0.4
	// DefaultWindow is the observation window.
	DefaultWindow = 500 * time.Millisecond
	// DefaultSmoothing is the weight of a new window in the smoothed
	// activity and loudness.
	DefaultSmoothing = 0.5
	// DefaultEnterActivity and DefaultExitActivity are the smoothed
	// activity (the EMA of 1 for an active window, 0 for another) at
	// which a participant becomes a speaker and under which it stops:
	// with the default smoothing, one active window enters and two
	// inactive ones leave, so a speaker shows within 0.5 s and goes
	// within 1 s of stopping, while one silent window (a breath) keeps
	// it.
	DefaultEnterActivity = 0.5
	DefaultExitActivity  = 0.3
	// DefaultMaxSpeakers caps the speaker list.
	DefaultMaxSpeakers = 3
	// DefaultMinEventInterval spaces change reports.
	DefaultMinEventInterval = 300 * time.Millisecond
	// DefaultMaxParticipants caps the participants one detector tracks.
	DefaultMaxParticipants = 10000
	// DefaultMaxObservationsPerWindow caps one participant's
	// observations counted in one window: audio frames are 10-60 ms, so
	// more than 500 in 500 ms is a flood, and the rest is ignored.
	DefaultMaxObservationsPerWindow = 500
)

// Config configures a [Detector]. Zero fields take their defaults.
type Config struct {
	// ActiveLevel: an observation at this level or louder (lower) is
	// speech, 0..127. Default DefaultActiveLevel.
	ActiveLevel uint8
	// MinActiveFraction of a window's duration must be speech, in
	// (0, 1]. Default DefaultMinActiveFraction.
	MinActiveFraction float64
	// Window is the observation window. Default DefaultWindow.
	Window time.Duration
	// Smoothing is the weight of each new window, in (0, 1]. Default
	// DefaultSmoothing.
	Smoothing float64
	// EnterActivity and ExitActivity are the smoothed activity a
	// participant needs to become a speaker and falls under to stop being
	// one; 0 <= Exit < Enter <= 1. Defaults DefaultEnterActivity and
	// DefaultExitActivity.
	EnterActivity, ExitActivity float64
	// UseVoiceFlag counts only observations whose RFC 6464 voice-activity
	// bit is set as speech, for publishers with a voice detector.
	UseVoiceFlag bool
	// MaxSpeakers caps the list. Default DefaultMaxSpeakers.
	MaxSpeakers int
	// MinEventInterval spaces change reports. Default
	// DefaultMinEventInterval; negative means none.
	MinEventInterval time.Duration
	// MaxParticipants caps tracked participants. Default
	// DefaultMaxParticipants.
	MaxParticipants int
	// MaxObservationsPerWindow caps one participant's observations per
	// window. Default DefaultMaxObservationsPerWindow.
	MaxObservationsPerWindow int
}

func (c *Config) setDefaults() {
	if c.ActiveLevel == 0 {
		c.ActiveLevel = DefaultActiveLevel
	}
	if c.MinActiveFraction == 0 {
		c.MinActiveFraction = DefaultMinActiveFraction
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.Smoothing == 0 {
		c.Smoothing = DefaultSmoothing
	}
	if c.EnterActivity == 0 && c.ExitActivity == 0 {
		c.EnterActivity, c.ExitActivity = DefaultEnterActivity, DefaultExitActivity
	}
	if c.MaxSpeakers == 0 {
		c.MaxSpeakers = DefaultMaxSpeakers
	}
	if c.MinEventInterval == 0 {
		c.MinEventInterval = DefaultMinEventInterval
	}
	if c.MaxParticipants == 0 {
		c.MaxParticipants = DefaultMaxParticipants
	}
	if c.MaxObservationsPerWindow == 0 {
		c.MaxObservationsPerWindow = DefaultMaxObservationsPerWindow
	}
}

func (c *Config) validate() error {
	switch {
	case c.ActiveLevel > MaxLevel:
		return fmt.Errorf("audiolevel: ActiveLevel %d over %d", c.ActiveLevel, MaxLevel)
	case !(c.MinActiveFraction > 0 && c.MinActiveFraction <= 1):
		return fmt.Errorf("audiolevel: MinActiveFraction %v outside (0, 1]", c.MinActiveFraction)
	case c.Window <= 0:
		return fmt.Errorf("audiolevel: Window %v", c.Window)
	case !(c.Smoothing > 0 && c.Smoothing <= 1):
		return fmt.Errorf("audiolevel: Smoothing %v outside (0, 1]", c.Smoothing)
	case !(c.ExitActivity >= 0 && c.ExitActivity < c.EnterActivity && c.EnterActivity <= 1):
		return fmt.Errorf("audiolevel: activity thresholds enter %v exit %v", c.EnterActivity, c.ExitActivity)
	case c.MaxSpeakers < 1 || c.MaxParticipants < 1 || c.MaxObservationsPerWindow < 1:
		return fmt.Errorf("audiolevel: count limits below 1")
	}
	return nil
}

// ErrTooManyParticipants is returned by Observe for a new participant past
// Config.MaxParticipants.
var ErrTooManyParticipants = errors.New("audiolevel: too many participants")

// Speaker is one entry of the speaker list.
type Speaker struct {
	// ID is the participant.
	ID string
	// Loudness is the smoothed linear loudness, 0..1.
	Loudness float64
	// Since is when the participant entered the list.
	Since time.Time
}

type participant struct {
	windowStart time.Time
	observed    time.Duration
	active      time.Duration
	sumLinear   float64 // of active observations, weighted by duration
	count       int
	activity    float64 // smoothed share of active windows
	smoothed    float64 // smoothed loudness, for ordering
	speaking    bool
	since       time.Time
}

// Detector turns audio levels into a speaker list. It is not safe for
// concurrent use; one goroutine of the SFU (or a mutex around it) owns it.
type Detector struct {
	cfg       Config
	parts     map[string]*participant
	published []string
	lastEvent time.Time
}

// New returns a detector.
func New(cfg Config) (*Detector, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Detector{cfg: cfg, parts: map[string]*participant{}}, nil
}

// Observe records that participant id sent d of audio at level (RFC 6464:
// 0 loudest, 127 silence) with the given voice-activity bit, at now.
func (d *Detector) Observe(id string, level uint8, voice bool, dur time.Duration, now time.Time) error {
	p, ok := d.parts[id]
	if !ok {
		if len(d.parts) >= d.cfg.MaxParticipants {
			return fmt.Errorf("audiolevel: participant %q: %w", id, ErrTooManyParticipants)
		}
		p = &participant{windowStart: now}
		d.parts[id] = p
	}
	// Close the windows that ended before this observation, so that it
	// counts in its own.
	d.closeWindow(p, now)
	if p.count >= d.cfg.MaxObservationsPerWindow || dur <= 0 {
		return nil
	}
	p.count++
	p.observed += dur
	if level <= d.cfg.ActiveLevel && (voice || !d.cfg.UseVoiceFlag) {
		p.active += dur
		p.sumLinear += Linear(level) * float64(dur)
	}
	return nil
}

// Remove forgets a participant (it left); the next Update reports the
// change if it was a speaker.
func (d *Detector) Remove(id string) {
	delete(d.parts, id)
}

// closeWindow ends p's window at now if it is over; a participant
// that sent nothing for a whole window gets an inactive window, so a
// talker who stops sending (muted, discontinuous transmission) decays.
func (d *Detector) closeWindow(p *participant, now time.Time) {
	for now.Sub(p.windowStart) >= d.cfg.Window {
		var loud, act float64
		if p.observed > 0 && float64(p.active) >= d.cfg.MinActiveFraction*float64(p.observed) {
			loud, act = p.sumLinear/float64(p.active), 1
		}
		p.smoothed += d.cfg.Smoothing * (loud - p.smoothed)
		p.activity += d.cfg.Smoothing * (act - p.activity)
		p.windowStart = p.windowStart.Add(d.cfg.Window)
		p.observed, p.active, p.sumLinear, p.count = 0, 0, 0, 0
		// Catch up over a long silence without looping per window:
		// after a dozen empty windows the loudness is effectively 0.
		if now.Sub(p.windowStart) > 12*d.cfg.Window {
			p.smoothed, p.activity = 0, 0
			p.windowStart = now.Add(-(now.Sub(p.windowStart) % d.cfg.Window))
		}
	}
}

// Update closes the windows that are over at now and returns the speaker
// list, loudest first, and whether it changed since the last list
// reported as changed. Changes are reported at most once per
// MinEventInterval; one held back is reported by a later Update.
func (d *Detector) Update(now time.Time) ([]Speaker, bool) {
	var list []Speaker
	for id, p := range d.parts {
		d.closeWindow(p, now)
		switch {
		case !p.speaking && p.activity >= d.cfg.EnterActivity:
			p.speaking, p.since = true, now
		case p.speaking && p.activity < d.cfg.ExitActivity:
			p.speaking = false
		}
		if p.speaking {
			list = append(list, Speaker{ID: id, Loudness: p.smoothed, Since: p.since})
		}
	}
	slices.SortFunc(list, func(a, b Speaker) int {
		switch {
		case a.Loudness > b.Loudness:
			return -1
		case a.Loudness < b.Loudness:
			return 1
		}
		// Ties in a stable order, so equal talkers do not flap.
		return a.Since.Compare(b.Since)
	})
	if len(list) > d.cfg.MaxSpeakers {
		list = list[:d.cfg.MaxSpeakers]
	}
	ids := make([]string, len(list))
	for i, s := range list {
		ids[i] = s.ID
	}
	if slices.Equal(ids, d.published) {
		return list, false
	}
	if !d.lastEvent.IsZero() && now.Sub(d.lastEvent) < d.cfg.MinEventInterval {
		// Held back: the list still differs from the published one at
		// a later Update, which reports it then.
		return list, false
	}
	d.published, d.lastEvent = ids, now
	return list, true
}
