package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livekit/protocol/livekit"
	protologger "github.com/livekit/protocol/logger"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtcp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/jetstreamproto/jsp/bench/sfu/load"
)

// rtpPayloadMTU is what one RTP packet carries of a frame: the SDK's
// outbound MTU (1200) less the RTP header and the VP8 descriptor.
const rtpPayloadMTU = 1200 - 12 - 1

type flags struct {
	load.ClientFlags
	url, apiKey, apiSecret string
}

func parseFlags(args []string) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("lkbench client", flag.ContinueOnError)
	fs.StringVar(&f.url, "url", "", "LiveKit URL, ws://HOST:PORT")
	fs.StringVar(&f.apiKey, "api-key", "devkey", "API key")
	fs.StringVar(&f.apiSecret, "api-secret", "secret", "API secret")
	f.Register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if f.url == "" {
		return nil, errors.New("-url is required")
	}
	return f, nil
}

type proc struct {
	f     *flags
	s     load.Scenario
	rx    *load.Receiver
	outMu sync.Mutex

	mu    sync.Mutex
	rooms []*lksdk.Room // guarded by mu
}

func (p *proc) println(s string) {
	p.outMu.Lock()
	defer p.outMu.Unlock()
	fmt.Fprintln(os.Stdout, s)
}

func clientMain(args []string) error {
	f, err := parseFlags(args)
	if err != nil {
		return err
	}
	s, err := f.Scenario()
	if err != nil {
		return err
	}
	// The SDK logs every connection step at info level to stderr by
	// default; that would cost the clients CPU the server needs.
	lksdk.SetLogger(protologger.GetDiscardLogger())
	p := &proc{f: f, s: s, rx: &load.Receiver{}}
	defer p.close()
	cmds := make(chan string, 4)
	go func() {
		// Ends with stdin (the orchestrator's pipe) or the process.
		defer close(cmds)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			cmds <- strings.TrimSpace(sc.Text())
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if f.Role == "pub" {
		return p.runPublisher(ctx, cmds)
	}
	return p.runSubscriber(cmds)
}

func (p *proc) close() {
	p.mu.Lock()
	rooms := p.rooms
	p.rooms = nil
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range rooms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Disconnect()
		}()
	}
	wg.Wait()
}

func waitCmd(cmds <-chan string, want string) error {
	for c := range cmds {
		if c == want {
			return nil
		}
	}
	return fmt.Errorf("stdin closed before %q", want)
}

// connect joins room as identity; subscribed tracks are read with
// p.readTrack and their layer asked for with want.
func (p *proc) connect(room, identity string, autoSubscribe bool, want int, subscribed *atomic.Int64) (*lksdk.Room, error) {
	cb := lksdk.NewRoomCallback()
	cb.OnTrackSubscribed = func(track *webrtc.TrackRemote, pub *lksdk.RemoteTrackPublication, _ *lksdk.RemoteParticipant) {
		if track.Kind() == webrtc.RTPCodecTypeVideo {
			_ = pub.SetVideoQuality([]livekit.VideoQuality{livekit.VideoQuality_LOW, livekit.VideoQuality_MEDIUM, livekit.VideoQuality_HIGH}[want])
		}
		sub := p.rx.NewSubscription(pub.SID(), want)
		go p.readTrack(track, sub)
		if subscribed != nil {
			subscribed.Add(1)
		}
	}
	var r *lksdk.Room
	var err error
	// A join on the loaded machine sometimes times out; try three times,
	// as the JSP clients' dials do.
	for range 3 {
		r, err = lksdk.ConnectToRoom(p.f.url, lksdk.ConnectInfo{APIKey: p.f.apiKey, APISecret: p.f.apiSecret,
			RoomName: room, ParticipantIdentity: identity}, cb, lksdk.WithAutoSubscribe(autoSubscribe))
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("join %s as %s: %w", room, identity, err)
	}
	p.mu.Lock()
	p.rooms = append(p.rooms, r)
	p.mu.Unlock()
	return r, nil
}

// readTrack reads RTP until the track ends: a frame is counted at its
// last packet (marker bit), with the header from its first.
func (p *proc) readTrack(track *webrtc.TrackRemote, sub *load.Subscription) {
	video := track.Kind() == webrtc.RTPCodecTypeVideo
	var (
		head    []byte
		headTS  uint32
		packets int
		vp8     codecs.VP8Packet
	)
	for {
		pkt, _, err := track.ReadRTP()
		if err != nil {
			return
		}
		now := time.Now()
		if !video {
			if len(pkt.Payload) > 1 {
				sub.OnFrame(pkt.Payload[1:], 1, now)
			}
			continue
		}
		payload, err := vp8.Unmarshal(pkt.Payload)
		if err != nil {
			continue
		}
		if vp8.S == 1 && vp8.PID == 0 {
			// The first packet of a frame: the VP8 header, then ours.
			head, headTS, packets = nil, pkt.Timestamp, 0
			if len(payload) >= vp8HeaderLen+load.PayloadHeader {
				head = append([]byte(nil), payload[vp8HeaderLen:vp8HeaderLen+load.PayloadHeader]...)
			}
		}
		if pkt.Timestamp != headTS {
			continue
		}
		packets++
		if pkt.Marker && head != nil {
			sub.OnFrame(head, packets, now)
			head = nil
		}
	}
}

// vp8HeaderLen is the VP8 frame tag (3 bytes) plus a key frame's start
// code and size (7 bytes); inter frames carry the same 10 bytes so that
// the header is always at one offset.
const vp8HeaderLen = 10

// vp8Frame lays a VP8 frame header in front of the schedule's payload,
// keeping the frame's size.
func vp8Frame(dst []byte, f load.OutFrame, w, h int) []byte {
	dst = append(dst[:0], make([]byte, vp8HeaderLen)...)
	// Frame tag: bit 0 is 0 for a key frame, version 0, show_frame set,
	// first partition size in the upper bits.
	tag := uint32(1<<4) | uint32(len(f.Payload))<<5
	if !f.KeyFrame {
		tag |= 1
	}
	dst[0], dst[1], dst[2] = byte(tag), byte(tag>>8), byte(tag>>16)
	dst[3], dst[4], dst[5] = 0x9d, 0x01, 0x2a
	binary.LittleEndian.PutUint16(dst[6:], uint16(w))
	binary.LittleEndian.PutUint16(dst[8:], uint16(h))
	return append(dst, f.Payload[:max(len(f.Payload)-vp8HeaderLen, load.PayloadHeader)]...)
}

// runPublisher publishes the scenario's tracks, waits for go, sends, and
// reports.
func (p *proc) runPublisher(ctx context.Context, cmds <-chan string) error {
	pl, err := load.PlanRooms(p.s, p.f.RoomCap)
	if err != nil {
		return err
	}
	var streams []*load.Stream
	var writers []func(load.OutFrame) (int, error)
	var subscribed atomic.Int64
	wantSubs := int64(0)
	nParts := pl.Rooms * p.s.Publishers
	for r := range pl.Rooms {
		for i := range p.s.Publishers {
			id := fmt.Sprintf("talker-%d-%d", r, i)
			if p.s.Video {
				id = fmt.Sprintf("camera-%d-%d", r, i)
			}
			if pl.PublishersSubscribe {
				wantSubs += int64(p.s.Publishers - 1)
			}
			room, err := p.connect(p.f.RoomName(r), id, pl.PublishersSubscribe, 0, &subscribed)
			if err != nil {
				return err
			}
			var mine []*load.Stream
			onRTCP := func(pk rtcp.Packet) {
				switch pk.(type) {
				case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
					for _, st := range mine {
						st.KeyRequest.Store(true)
					}
				}
			}
			if !p.s.Video {
				tr, err := lksdk.NewLocalSampleTrack(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2})
				if err != nil {
					return err
				}
				pub, err := room.LocalParticipant.PublishTrack(tr, &lksdk.TrackPublicationOptions{Name: "mic",
					Source: livekit.TrackSource_MICROPHONE, DisableDTX: true})
				if err != nil {
					return fmt.Errorf("publish as %s: %w", id, err)
				}
				l := p.s.Layers[0]
				st := &load.Stream{Key: load.StreamKey(pub.SID(), 0), Spec: l, ClockRate: 48000,
					Offset: time.Duration(len(streams)) * l.Interval() / time.Duration(nParts)}
				buf := make([]byte, 0, l.FrameBytes+1)
				streams = append(streams, st)
				writers = append(writers, func(f load.OutFrame) (int, error) {
					// An Opus TOC byte (CELT full band, 20 ms, one
					// frame), then the header.
					buf = append(append(buf[:0], 0xF8), f.Payload[:len(f.Payload)-1]...)
					return 1, tr.WriteSample(media.Sample{Data: buf, Duration: l.Interval()}, nil)
				})
				continue
			}
			var tracks []*lksdk.LocalTrack
			qualities := []livekit.VideoQuality{livekit.VideoQuality_LOW, livekit.VideoQuality_MEDIUM, livekit.VideoQuality_HIGH}
			for li, l := range p.s.Layers {
				tr, err := lksdk.NewLocalSampleTrack(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
					lksdk.WithSimulcast(fmt.Sprintf("cam-%d", r), &livekit.VideoLayer{Quality: qualities[li],
						Width: uint32(l.Width), Height: uint32(l.Height), Bitrate: uint32(l.Bitrate)}),
					lksdk.WithRTCPHandler(onRTCP))
				if err != nil {
					return err
				}
				tracks = append(tracks, tr)
			}
			pub, err := room.LocalParticipant.PublishSimulcastTrack(tracks, &lksdk.TrackPublicationOptions{Name: "cam",
				Source: livekit.TrackSource_CAMERA, VideoWidth: 1280, VideoHeight: 720})
			if err != nil {
				return fmt.Errorf("publish as %s: %w", id, err)
			}
			for li, l := range p.s.Layers {
				st := &load.Stream{Key: load.StreamKey(pub.SID(), li), Layer: li, Spec: l, ClockRate: 90000, Video: true,
					Offset: time.Duration(len(streams)) * l.Interval() / time.Duration(nParts*len(p.s.Layers))}
				if p.s.KeyInterval > 0 {
					st.KeyEvery = int(p.s.KeyInterval / l.Interval())
				}
				mine = append(mine, st)
				streams = append(streams, st)
				tr := tracks[li]
				var buf []byte
				writers = append(writers, func(f load.OutFrame) (int, error) {
					buf = vp8Frame(buf, f, l.Width, l.Height)
					return (len(buf) + rtpPayloadMTU - 1) / rtpPayloadMTU, tr.WriteSample(media.Sample{Data: buf, Duration: l.Interval()}, nil)
				})
			}
		}
	}
	if err := waitCount(&subscribed, wantSubs, 2*time.Minute); err != nil {
		return fmt.Errorf("talkers hearing each other: %w", err)
	}
	if p.s.Video {
		// LiveKit offers a simulcast track to subscribers only once its
		// layers carry media: a second of frames before the listeners
		// join (none of them in the window).
		p.run(ctx, streams, writers, time.Now(), time.Second, 0)
	}
	p.println(load.Ready)
	if err := waitCmd(cmds, load.Go); err != nil {
		return err
	}
	p.run(ctx, streams, writers, time.Now().Add(100*time.Millisecond), p.f.Warmup, p.f.Window)
	for _, l := range load.SentLines(streams) {
		p.println(l.String())
	}
	p.println(load.SentDone)
	if err := waitCmd(cmds, load.Stop); err != nil {
		return err
	}
	p.report()
	return nil
}

// run sends every stream from t0 for warmup plus window, printing the
// window's phase lines when window is not zero.
func (p *proc) run(ctx context.Context, streams []*load.Stream, writers []func(load.OutFrame) (int, error), t0 time.Time, warmup, window time.Duration) {
	winStart, winEnd := t0.Add(warmup), t0.Add(warmup+window)
	var wg sync.WaitGroup
	for i, st := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.Run(ctx, t0, winStart, winEnd, writers[i])
		}()
	}
	if window > 0 {
		time.Sleep(time.Until(winStart))
		p.println(load.PhaseWindowStart)
		time.Sleep(time.Until(winEnd))
		p.println(load.PhaseWindowEnd)
	}
	wg.Wait()
}

func (p *proc) report() {
	for _, l := range p.rx.Lines() {
		p.println(l.String())
	}
}

// waitCount waits until n reaches want, or fails after d.
func waitCount(n *atomic.Int64, want int64, d time.Duration) error {
	deadline := time.Now().Add(d)
	for n.Load() < want {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d after %v", n.Load(), want, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// runSubscriber joins the listeners of -assign; LiveKit subscribes them
// to every published track (auto-subscribe).
func (p *proc) runSubscriber(cmds <-chan string) error {
	type job struct {
		room, id string
		want     int
	}
	var jobs []job
	for _, a := range strings.Split(p.f.Assign, ",") {
		var r, n, first int
		if _, err := fmt.Sscanf(a, "%d:%d:%d", &r, &n, &first); err != nil {
			return fmt.Errorf("-assign %q: want ROOM:COUNT:FIRST", a)
		}
		for i := range n {
			jobs = append(jobs, job{p.f.RoomName(r), fmt.Sprintf("listener-%d-%d", r, first+i), (first + i) % len(p.s.Layers)})
		}
	}
	var subscribed atomic.Int64
	sem := make(chan struct{}, max(p.f.Dialers, 1))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, errs[i] = p.connect(j.room, j.id, true, j.want, &subscribed)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := waitCount(&subscribed, int64(len(jobs)*p.s.Publishers), 2*time.Minute); err != nil {
		return fmt.Errorf("subscriptions: %w", err)
	}
	p.println(load.Ready)
	if err := waitCmd(cmds, load.Stop); err != nil {
		return err
	}
	p.report()
	return nil
}
