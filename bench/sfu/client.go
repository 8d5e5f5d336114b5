package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/bench/sfu/load"
	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/client/voice"
	"github.com/jetstreamproto/jsp/media"
	"github.com/jetstreamproto/jsp/media/simulcast"
	"github.com/jetstreamproto/jsp/security/token"
)

// Client processes. The orchestrator starts one publisher process and a
// few subscriber processes, each holding many SDK clients (one
// client.Client, one QUIC connection and one voice.Room per participant).
// They talk to it over pipes with the protocol of package load.

// clientFlags configure a client process: the shared flags and the JSP
// client's own.
type clientFlags struct {
	load.ClientFlags
	url, keyFile, audience string
	nack                   time.Duration
}

func parseClientFlags(args []string) (*clientFlags, error) {
	f := &clientFlags{}
	fs := flag.NewFlagSet("sfu client", flag.ContinueOnError)
	fs.StringVar(&f.url, "url", "", "server URL, jsp+quic://HOST:PORT")
	fs.StringVar(&f.keyFile, "key", "", "PEM token signing key (the clients sign their own tokens)")
	fs.StringVar(&f.audience, "audience", "sfu-bench", "token audience")
	fs.DurationVar(&f.nack, "nack", 0, "turn NACK on, with this jitter-buffer ceiling (0: no NACK, no playout delay)")
	f.Register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if f.url == "" || f.keyFile == "" {
		return nil, errors.New("client: -url and -key are required")
	}
	return f, nil
}

// participant is one SDK client in a room.
type participant struct {
	c    *client.Client
	room *voice.Room
}

// clientProc is a client process's state.
type clientProc struct {
	f     *clientFlags
	s     load.Scenario
	key   token.PrivateKey
	out   *lineWriter
	parts []*participant
	rx    *load.Receiver

	mu      sync.Mutex
	remotes []remote // guarded by mu: video subscriptions
}

// lineWriter serializes lines to the orchestrator.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) println(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(l.w, s)
}

func clientMain(args []string) error {
	f, err := parseClientFlags(args)
	if err != nil {
		return err
	}
	s, err := f.Scenario()
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(f.keyFile)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	key, err := token.ParsePrivateKeyPEM(raw)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	p := &clientProc{f: f, s: s, key: key, out: &lineWriter{w: os.Stdout}, rx: &load.Receiver{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer p.close()
	cmds := make(chan string, 4)
	go func() {
		// Owned by the process: it ends with stdin (the orchestrator's
		// pipe) or with the process.
		defer close(cmds)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			cmds <- strings.TrimSpace(sc.Text())
		}
	}()
	if f.Role == "pub" {
		return p.runPublisher(ctx, cmds)
	}
	return p.runSubscriber(ctx, cmds)
}

// dial connects one participant and joins room.
func (p *clientProc) dial(ctx context.Context, user, roomID string) (*participant, error) {
	tok, err := token.Sign(p.key, token.Claims{Audience: p.f.audience, Subject: user,
		NotBefore: time.Now().Add(-time.Minute), Expiry: time.Now().Add(2 * time.Hour)})
	if err != nil {
		return nil, err
	}
	o := client.Options{InsecureSkipVerify: true, Logger: slog.New(slog.DiscardHandler), DialTimeout: 30 * time.Second}
	o.Info.Auth = []byte(tok)
	o.Info.Name = "sfu-bench"
	var c *client.Client
	// A handshake on the loaded machine sometimes times out; try three
	// times (the LiveKit clients do the same).
	for range 3 {
		if c, err = client.Dial(ctx, p.f.url, o); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", user, err)
	}
	// By default the jitter buffer passes packets on as they arrive (no
	// playout delay), so the latency measured is the network's and the
	// server's; no NACK and no FEC, so every forwarded packet is a source
	// packet. With -nack a gap is NACKed and the buffer may wait up to
	// that long for the repair (its delay adapts to the jitter).
	vo := voice.Options{MinDelay: time.Microsecond, MaxDelay: time.Microsecond, DisableNACK: true, DisableFEC: true}
	if p.f.nack > 0 {
		vo.MaxDelay, vo.DisableNACK = p.f.nack, false
	}
	room, err := voice.Join(ctx, c, roomID, vo)
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("join %s as %s: %w", roomID, user, err)
	}
	return &participant{c: c, room: room}, nil
}

// dialAll connects n participants, f.Dialers at a time.
func (p *clientProc) dialAll(ctx context.Context, users, rooms []string) ([]*participant, error) {
	out := make([]*participant, len(users))
	errs := make([]error, len(users))
	sem := make(chan struct{}, max(p.f.Dialers, 1))
	var wg sync.WaitGroup
	for i := range users {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i], errs[i] = p.dial(ctx, users[i], rooms[i])
		}()
	}
	wg.Wait()
	for _, pt := range out {
		if pt != nil {
			p.parts = append(p.parts, pt)
		}
	}
	return out, errors.Join(errs...)
}

func (p *clientProc) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, pt := range p.parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = pt.room.Close(ctx)
			_ = pt.c.Close()
		}()
	}
	wg.Wait()
}

// waitCmd waits for command want from the orchestrator.
func waitCmd(cmds <-chan string, want string) error {
	for c := range cmds {
		if c == want {
			return nil
		}
	}
	return fmt.Errorf("stdin closed before %q", want)
}

// subscribe subscribes pt to track and records what arrives.
func (p *clientProc) subscribe(ctx context.Context, pt *participant, track string, layer int) error {
	sub := p.rx.NewSubscription(track, layer)
	rt, err := pt.room.Subscribe(ctx, track, func(f media.ReceivedFrame) { sub.OnFrame(f.Payload, f.Packets, time.Now()) })
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", track, err)
	}
	sub.SetStats(func() (uint64, uint64) { st := rt.Stats(); return st.Lost, st.Late })
	if p.s.Video {
		p.mu.Lock()
		p.remotes = append(p.remotes, remote{rt, layer})
		p.mu.Unlock()
		return p.estimate(ctx, remote{rt, layer})
	}
	return nil
}

// remote is a video subscription and the layer it is to get.
type remote struct {
	rt    *voice.RemoteTrack
	layer int
}

// estimate reports the bandwidth estimate and view size that select r's
// layer.
func (p *clientProc) estimate(ctx context.Context, r remote) error {
	l := p.s.Layers[r.layer]
	if err := r.rt.SetEstimate(ctx, l.Estimate, l.Width, l.Height); err != nil {
		return fmt.Errorf("estimate %s: %w", r.rt.ID(), err)
	}
	return nil
}

// reportEstimates reports every video subscription's estimate again.
func (p *clientProc) reportEstimates(ctx context.Context) error {
	p.mu.Lock()
	rs := append([]remote(nil), p.remotes...)
	p.mu.Unlock()
	for _, r := range rs {
		if err := p.estimate(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// runSubscriber joins the listeners of -assign, subscribes each to every
// published track of its room, and reports when told to stop.
func (p *clientProc) runSubscriber(ctx context.Context, cmds <-chan string) error {
	var users, rooms []string
	var layers []int
	for _, a := range strings.Split(p.f.Assign, ",") {
		var r, n, first int
		if _, err := fmt.Sscanf(a, "%d:%d:%d", &r, &n, &first); err != nil {
			return fmt.Errorf("-assign %q: want ROOM:COUNT:FIRST", a)
		}
		for i := range n {
			users = append(users, fmt.Sprintf("listener-%d-%d", r, first+i))
			rooms = append(rooms, p.f.RoomName(r))
			layers = append(layers, (first+i)%len(p.s.Layers))
		}
	}
	parts, err := p.dialAll(ctx, users, rooms)
	if err != nil {
		return err
	}
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(p.f.Dialers, 1))
	for i, pt := range parts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			tracks, err := waitTracks(ctx, pt.room, p.s.Publishers)
			if err == nil {
				for _, t := range tracks {
					if err = p.subscribe(ctx, pt, t, layers[i]); err != nil {
						break
					}
				}
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if p.s.Video {
		// The layer selector moves up only when the estimate has allowed
		// the higher layer for its hold time (simulcast.DefaultUpHold),
		// as a subscriber's estimator would keep reporting it.
		time.Sleep(simulcast.DefaultUpHold + 200*time.Millisecond)
		if err := p.reportEstimates(ctx); err != nil {
			return err
		}
	}
	p.out.println(load.Ready)
	if err := waitCmd(cmds, load.Stop); err != nil {
		return err
	}
	p.report()
	return nil
}

// waitTracks waits until room lists n published tracks and returns their
// ids.
func waitTracks(ctx context.Context, room *voice.Room, n int) ([]string, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		parts, err := room.Participants(ctx)
		if err != nil {
			return nil, err
		}
		var ids []string
		for _, pa := range parts {
			for _, t := range pa.Tracks {
				ids = append(ids, t.ID)
			}
		}
		if len(ids) >= n {
			return ids, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("room %s lists %d tracks, want %d", room.ID(), len(ids), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// report prints the receive results: one line per stream and one with the
// latency histogram.
func (p *clientProc) report() {
	for _, l := range p.rx.Lines() {
		p.out.println(l.String())
	}
}

// runPublisher joins the publishers (audio: the talkers, who also hear
// each other; video: the camera, once per room), waits for "go", sends
// for warm-up plus window and reports.
func (p *clientProc) runPublisher(ctx context.Context, cmds <-chan string) error {
	pl, err := load.PlanRooms(p.s, p.f.RoomCap)
	if err != nil {
		return err
	}
	var users, rooms []string
	for r := range pl.Rooms {
		for i := range p.s.Publishers {
			users = append(users, fmt.Sprintf("talker-%d-%d", r, i))
			if p.s.Video {
				users[len(users)-1] = fmt.Sprintf("camera-%d-%d", r, i)
			}
			rooms = append(rooms, p.f.RoomName(r))
		}
	}
	parts, err := p.dialAll(ctx, users, rooms)
	if err != nil {
		return err
	}
	var streams []*load.Stream
	locals := make([]*voice.LocalTrack, len(parts))
	clock := uint64(voice.AudioClockRate)
	if p.s.Video {
		clock = voice.VideoClockRate
	}
	for i, pt := range parts {
		o := voice.TrackOptions{Name: "mic", Kind: voice.KindAudio, Codec: "opus"}
		if p.s.Video {
			o = voice.TrackOptions{Name: "cam", Kind: voice.KindVideo, Codec: "vp8"}
			for _, l := range p.s.Layers {
				o.Layers = append(o.Layers, voice.Layer{Width: l.Width, Height: l.Height, Bitrate: l.Bitrate})
			}
		}
		t, err := pt.room.PublishTrack(ctx, o)
		if err != nil {
			return fmt.Errorf("publish as %s: %w", users[i], err)
		}
		locals[i] = t
		var mine []*load.Stream
		for li, l := range p.s.Layers {
			// Streams start spread over a frame interval, as
			// independent encoders would.
			st := &load.Stream{Key: load.StreamKey(t.ID(), li), Layer: li, Spec: l, ClockRate: clock, Video: p.s.Video,
				Offset: time.Duration(len(streams)) * l.Interval() / time.Duration(len(parts)*len(p.s.Layers))}
			if p.s.Video && p.s.KeyInterval > 0 {
				st.KeyEvery = int(p.s.KeyInterval / l.Interval())
			}
			mine = append(mine, st)
			streams = append(streams, st)
		}
		t.OnKeyFrameRequest(func(layer int) {
			if layer >= 0 && layer < len(mine) {
				mine[layer].KeyRequest.Store(true)
			}
		})
	}
	if pl.PublishersSubscribe {
		// Every talker hears every other one.
		for i, pt := range parts {
			for j, t := range locals {
				if i == j || rooms[i] != rooms[j] {
					continue
				}
				if err := p.subscribe(ctx, pt, t.ID(), 0); err != nil {
					return err
				}
			}
		}
	}
	p.out.println(load.Ready)
	if err := waitCmd(cmds, load.Go); err != nil {
		return err
	}
	t0 := time.Now().Add(100 * time.Millisecond)
	winStart, winEnd := t0.Add(p.f.Warmup), t0.Add(p.f.Warmup+p.f.Window)
	var wg sync.WaitGroup
	for si, st := range streams {
		t := locals[si/len(p.s.Layers)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.Run(ctx, t0, winStart, winEnd, func(f load.OutFrame) (int, error) {
				before := t.Stats()[st.Layer].Packets
				err := t.WriteFrame(st.Layer, media.Frame{Timestamp: f.Timestamp, KeyFrame: f.KeyFrame, Payload: f.Payload})
				return int(t.Stats()[st.Layer].Packets - before), err
			})
		}()
	}
	time.Sleep(time.Until(winStart))
	p.out.println(load.PhaseWindowStart)
	time.Sleep(time.Until(winEnd))
	p.out.println(load.PhaseWindowEnd)
	wg.Wait()
	for _, l := range load.SentLines(streams) {
		p.out.println(l.String())
	}
	p.out.println(load.SentDone)
	if err := waitCmd(cmds, load.Stop); err != nil {
		return err
	}
	p.report()
	return nil
}
