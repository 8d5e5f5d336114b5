package media

import (
	"errors"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/reliability/fec"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
)

// Test streams: frames every interval; the receiver's playout delay gives
// an in-memory link (sub-millisecond RTT) many NACK rounds, and leaves room
// for a loaded machine (the race detector, two shared cores) to stall a
// goroutine for tens of milliseconds without a repair coming late.
const (
	interval = 2 * time.Millisecond
	playout  = 400 * time.Millisecond
	quiet    = time.Second
)

var (
	multi  = sizes{1, 3000}    // one to three packets
	twoPkt = sizes{1100, 2000} // exactly two packets at the default room
	audio  = sizes{20, 120}    // one packet
)

func rxConfig() ReceiverConfig { return ReceiverConfig{MinDelay: playout} }

// TestCleanStream sends frames of one to three packets over a lossless
// in-memory session and checks every frame arrives whole, in order, with
// its flags, and that the counters agree.
func TestCleanStream(t *testing.T) {
	for _, caps := range [][]string{nil, {CapFEC}} {
		name := "no-fec"
		if caps != nil {
			name = "fec"
		}
		t.Run(name, func(t *testing.T) {
			p := newFlowPair(t, caps, SenderConfig{InitialSeq: 65_500}, rxConfig())
			if got, want := p.tx.FECEnabled(), caps != nil; got != want {
				t.Fatalf("FECEnabled %v, want %v", got, want)
			}
			sent := stream(t, p.tx, 150, interval, multi, 1)
			got := collect(t, p.rx, len(sent), quiet)
			t.Logf("sender %+v\nreceiver %+v\nsessions %+v %+v", p.tx.Stats(), p.rx.Stats(), p.cli.Stats(), p.srv.Stats())
			byIndex := checkFrames(t, sent, got, nil)
			if byIndex[0].Discontinuity || byIndex[149].Repaired {
				t.Fatalf("clean stream flagged a discontinuity or repair")
			}
			ts, rs := p.tx.Stats(), p.rx.Stats()
			if ts.Frames != 150 || rs.Frames != 150 || rs.Received != ts.Packets || rs.Lost != 0 || rs.Late != 0 {
				t.Fatalf("sender %+v\nreceiver %+v", ts, rs)
			}
			// The sequence wrapped (65,500 + ~300 packets): extension
			// kept the order.
			if ts.Packets < 100 {
				t.Fatalf("only %d packets sent", ts.Packets)
			}
		})
	}
}

// TestAudioLevel checks that the audio level travels with every frame.
func TestAudioLevel(t *testing.T) {
	p := newFlowPair(t, nil, SenderConfig{}, ReceiverConfig{MinDelay: playout, SinglePacketFrames: true, ClockRate: 48_000})
	var sent []Frame
	for i := 0; i < 20; i++ {
		f := Frame{Timestamp: uint32(i * 960), Payload: []byte{byte(i), 1, 2}, HasAudioLevel: true,
			AudioLevel: mediapkt.AudioLevel{Voice: i%2 == 0, Level: uint8(i * 6)}}
		if err := p.tx.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, f)
		time.Sleep(interval)
	}
	checkFrames(t, sent, collect(t, p.rx, len(sent), quiet), nil)
}

// TestNackRecovery drops the first transmission of some packets; the
// receiver NACKs them and the sender's retransmissions fill the gaps.
func TestNackRecovery(t *testing.T) {
	p := newFlowPair(t, nil, SenderConfig{}, rxConfig())
	p.cli.dropFlow = dropOriginals(5, 6, 20, 33, 34, 35)
	sent := stream(t, p.tx, 100, interval, multi, 2)
	checkFrames(t, sent, collect(t, p.rx, len(sent), quiet), nil)
	ts, rs := p.tx.Stats(), p.rx.Stats()
	if rs.RecoveredNACK != 6 || rs.RecoveredFEC != 0 || rs.Lost != 0 || ts.Retransmitted < 6 {
		t.Fatalf("recovered by NACK %d, by FEC %d, lost %d, retransmitted %d; want 6, 0, 0, >= 6",
			rs.RecoveredNACK, rs.RecoveredFEC, rs.Lost, ts.Retransmitted)
	}
	if rs.NacksSent == 0 || rs.NackedSeqs < 6 {
		t.Fatalf("NACKs sent %d listing %d numbers", rs.NacksSent, rs.NackedSeqs)
	}
}

// fixedFEC is a policy that protects every group of 4 with 2 parity
// packets, whatever the reports say.
var fixedFEC = fec.PolicyConfig{Table: []fec.Step{{MinLoss: 0, Params: fec.Params{K: 4, M: 2}}}}

// TestFECRecovery drops packets and every NACK, so only FEC can repair:
// two losses in one 4+2 group and one in others are all rebuilt.
func TestFECRecovery(t *testing.T) {
	p := newFlowPair(t, []string{CapFEC}, SenderConfig{Policy: fixedFEC, MaxGroupDelay: time.Second}, rxConfig())
	p.cli.dropFlow = dropOriginals(1, 9, 10, 22)
	p.srv.dropNacks = true
	sent := stream(t, p.tx, 60, interval, twoPkt, 3)
	got := collect(t, p.rx, len(sent), quiet)
	checkFrames(t, sent, got, nil)
	rs := p.rx.Stats()
	if rs.RecoveredFEC != 4 || rs.RecoveredNACK != 0 || rs.Lost != 0 {
		t.Fatalf("recovered by FEC %d, by NACK %d, lost %d; want 4, 0, 0", rs.RecoveredFEC, rs.RecoveredNACK, rs.Lost)
	}
	// Seq s is in frame s/2; frames 0, 4, 5 and 11 were repaired.
	for _, i := range []int{0, 4, 5, 11} {
		if !got[i].Repaired {
			t.Errorf("frame %d not marked repaired", i)
		}
	}
	if ts := p.tx.Stats(); ts.Parity != ts.Packets/4*2 || ts.FEC != (fec.Params{K: 4, M: 2}) {
		t.Fatalf("%d parity for %d packets with %v; want 2 per 4", ts.Parity, ts.Packets, ts.FEC)
	}
}

// TestFECGroupFlush checks that a slow flow's open group is closed after
// MaxGroupDelay, so its last packets are protected without waiting for
// more.
func TestFECGroupFlush(t *testing.T) {
	p := newFlowPair(t, []string{CapFEC}, SenderConfig{Policy: fixedFEC, MaxGroupDelay: 10 * time.Millisecond}, rxConfig())
	// The receiver places a group against the newest packet it has, so
	// the first packet gets through and the second is lost.
	p.cli.dropFlow = dropOriginals(1)
	p.srv.dropNacks = true
	for i, s := range []string{"first", "second"} {
		if err := p.tx.WriteFrame(Frame{Timestamp: uint32(i * 900), Payload: []byte(s)}); err != nil {
			t.Fatal(err)
		}
		// Nothing else is written: only the flush timer can close
		// the group.
		deadline := time.Now().Add(5 * time.Second)
		for p.tx.Stats().Parity != uint64(i+1) {
			if time.Now().After(deadline) {
				t.Fatalf("group %d never flushed: %+v", i, p.tx.Stats())
			}
			time.Sleep(time.Millisecond)
		}
	}
	got := collect(t, p.rx, 2, quiet)
	if len(got) != 2 || string(got[1].Payload) != "second" || !got[1].Repaired {
		t.Fatalf("got %+v; want the second frame rebuilt from a flushed one-packet group", got)
	}
	// A one-packet group of a 4+2 shape gets ceil(1*2/4) = 1 parity
	// packet (fec.ParityShare), which alone rebuilds it.
	if ts := p.tx.Stats(); ts.Parity != 2 || ts.ParityTrimmed != 2 {
		t.Fatalf("%d parity packets sent, %d trimmed; want 1 and 1 for each of two one-packet groups", ts.Parity, ts.ParityTrimmed)
	}
}

// TestFECNotNegotiated checks that a sender without the capability sends
// no parity even with a policy that asks for it.
func TestFECNotNegotiated(t *testing.T) {
	p := newFlowPair(t, nil, SenderConfig{Policy: fixedFEC}, rxConfig())
	sent := stream(t, p.tx, 20, interval, multi, 4)
	checkFrames(t, sent, collect(t, p.rx, len(sent), quiet), nil)
	if ts, rs := p.tx.Stats(), p.rx.Stats(); ts.Parity != 0 || rs.Parity != 0 || rs.Reports != 0 {
		t.Fatalf("parity %d/%d, reports %d without the fec capability", ts.Parity, rs.Parity, rs.Reports)
	}
}

// TestUnrecoverable drops packets whose retransmission the deadline no
// longer allows: the frames holding them are dropped, the next delivered
// frame says Discontinuity, and a multi-packet flow also loses the frame
// after a lost end-of-frame packet's successor only when it cannot tell
// where frames start.
func TestUnrecoverable(t *testing.T) {
	tests := []struct {
		name    string
		sz      sizes
		single  bool
		drop    []mediapkt.Seq
		missing []int // frames not delivered
		dropped int   // of those, frames some packets of which were played
		discont []int // delivered frames flagged
	}{
		// Seq s is in frame s/2. Losing seq 10 (first of frame 5)
		// loses frame 5; losing 21 (last of frame 10) loses frame 10
		// and, since the receiver cannot tell that seq 22 starts frame
		// 11, frame 11 too.
		{"two-packet frames", twoPkt, false, []mediapkt.Seq{10, 21}, []int{5, 10, 11}, 3, []int{6, 12}},
		{"audio, unknown framing", audio, false, []mediapkt.Seq{10}, []int{10, 11}, 1, []int{12}},
		{"audio, single-packet frames", audio, true, []mediapkt.Seq{10}, []int{10}, 0, []int{11}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcfg := rxConfig()
			rcfg.SinglePacketFrames = tt.single
			// A 1 ns deadline: every NACK comes too late.
			p := newFlowPair(t, nil, SenderConfig{Deadline: time.Nanosecond}, rcfg)
			p.cli.dropFlow = dropOriginals(tt.drop...)
			sent := stream(t, p.tx, 30, interval, tt.sz, 5)
			missing := map[int]bool{}
			for _, i := range tt.missing {
				missing[i] = true
			}
			got := collect(t, p.rx, len(sent)-len(missing), quiet)
			t.Logf("sender %+v\nreceiver %+v", p.tx.Stats(), p.rx.Stats())
			byIndex := checkFrames(t, sent, got, missing)
			for i, f := range byIndex {
				want := false
				for _, d := range tt.discont {
					want = want || d == i
				}
				if f.Discontinuity != want {
					t.Errorf("frame %d: Discontinuity %v, want %v", i, f.Discontinuity, want)
				}
			}
			rs, ts := p.rx.Stats(), p.tx.Stats()
			if rs.Lost != uint64(len(tt.drop)) || rs.FramesDropped != uint64(tt.dropped) {
				t.Errorf("lost %d, frames dropped %d; want %d, %d", rs.Lost, rs.FramesDropped, len(tt.drop), tt.dropped)
			}
			// Past the deadline a packet is either still cached but
			// too late or already expired from the cache.
			if ts.Retransmitted != 0 || ts.NackedTooLate+ts.NackedNotCached == 0 {
				t.Errorf("retransmitted %d, NACKed too late %d, not cached %d; want 0 and some", ts.Retransmitted, ts.NackedTooLate, ts.NackedNotCached)
			}
		})
	}
}

// TestReportsDrivePolicy drops every fifth original with NACKs still on:
// the receiver's reports must move the sender's default policy to an FEC
// shape for about 20% loss.
func TestReportsDrivePolicy(t *testing.T) {
	p := newFlowPair(t, []string{CapFEC}, SenderConfig{}, ReceiverConfig{MinDelay: playout, ReportInterval: 20 * time.Millisecond})
	p.cli.dropFlow = func(b []byte) bool {
		h, _, err := mediapkt.Parse(b)
		return err == nil && h.Flags&(mediapkt.FlagFEC|mediapkt.FlagRetransmission) == 0 && h.Seq%5 == 2
	}
	sent := stream(t, p.tx, 150, interval, multi, 6)
	got := collect(t, p.rx, len(sent), quiet)
	ts, rs := p.tx.Stats(), p.rx.Stats()
	t.Logf("sender %+v\nreceiver %+v", ts, rs)
	checkFrames(t, sent, got, nil)
	if rs.Reports == 0 || ts.Reports == 0 {
		t.Fatalf("reports sent %d, received %d", rs.Reports, ts.Reports)
	}
	// Full-size source packets and their parity both fit one datagram,
	// so the session never fragments them (JSP §13.3).
	if room := MediaPacketRoom(p.cli.Conn().MaxDatagramSize(), testFlow); p.cli.maxLen > room || p.cli.maxLen < room-ParityReserve {
		t.Errorf("longest datagram %d bytes; want the largest parity packet, at most the %d-byte room", p.cli.maxLen, room)
	}
	if ts.LossEstimate < 0.12 || ts.LossEstimate > 0.28 || !ts.FEC.Enabled() || ts.Parity == 0 {
		t.Fatalf("loss estimate %.3f, FEC %v, parity %d; want about 0.2 and FEC on", ts.LossEstimate, ts.FEC, ts.Parity)
	}
	t.Logf("estimate %.3f -> %v; recovered by FEC %d, by NACK %d", ts.LossEstimate, ts.FEC, rs.RecoveredFEC, rs.RecoveredNACK)
}

// TestMuxRules covers flow registration and closing.
func TestMuxRules(t *testing.T) {
	cs, ss := memSessions(t)
	m := NewMux(cs, MuxConfig{Logger: quietLogger(), ProbeInterval: -1})
	sm := NewMux(ss, MuxConfig{Logger: quietLogger()})
	defer sm.Close()
	if _, err := m.NewSender(1, SenderConfig{}); jsperr.CodeOf(err) != jsperr.BadRequest {
		t.Fatalf("sender on reserved flow 1: %v", err)
	}
	if _, err := m.NewReceiver(0, ReceiverConfig{}); jsperr.CodeOf(err) != jsperr.BadRequest {
		t.Fatalf("receiver on reserved flow 0: %v", err)
	}
	s, err := m.NewSender(4, SenderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.NewSender(4, SenderConfig{}); jsperr.CodeOf(err) != jsperr.Conflict {
		t.Fatalf("second sender on flow 4: %v", err)
	}
	if _, err := m.NewSender(5, SenderConfig{MaxPacketSize: 10}); err == nil {
		t.Fatal("MaxPacketSize 10 accepted")
	}
	if _, err := m.NewReceiver(5, ReceiverConfig{MinDelay: time.Second, MaxDelay: time.Millisecond}); err == nil {
		t.Fatal("MaxDelay below MinDelay accepted")
	}
	// Nobody receives flow 4 on the other side: counted, not delivered.
	for i := 0; i < 3; i++ {
		if err := s.WriteFrame(Frame{Payload: []byte{1}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WriteFrame(Frame{Payload: make([]byte, DefaultMaxFrameSize+1)}); jsperr.CodeOf(err) != jsperr.MessageTooLarge {
		t.Fatalf("oversized frame: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for sm.Stats().UnknownFlow < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := sm.Stats().UnknownFlow; got != 3 {
		t.Fatalf("UnknownFlow %d, want 3", got)
	}
	r, err := m.NewReceiver(6, ReceiverConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-r.Frames(); ok {
		t.Fatal("Frames still open after Close")
	}
	if err := s.WriteFrame(Frame{}); !errors.Is(err, ErrSenderClosed) {
		t.Fatalf("WriteFrame after Close: %v", err)
	}
	if _, err := m.NewSender(8, SenderConfig{}); !errors.Is(err, ErrMuxClosed) {
		t.Fatalf("NewSender after Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestOnFrame checks the callback delivery path and the RTT probe.
func TestOnFrame(t *testing.T) {
	cs, ss := memSessions(t)
	cm := NewMux(cs, MuxConfig{Logger: quietLogger(), ProbeInterval: 10 * time.Millisecond})
	sm := NewMux(ss, MuxConfig{Logger: quietLogger(), ProbeInterval: 10 * time.Millisecond})
	defer cm.Close()
	defer sm.Close()
	got := make(chan ReceivedFrame, 16)
	if _, err := sm.NewReceiver(3, ReceiverConfig{MinDelay: playout, OnFrame: func(f ReceivedFrame) { got <- f }}); err != nil {
		t.Fatal(err)
	}
	tx, err := cm.NewSender(3, SenderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := tx.WriteFrame(Frame{Timestamp: uint32(i * 180), Payload: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		select {
		case f := <-got:
			if f.Payload[0] != byte(i) {
				t.Fatalf("frame %d carries %d", i, f.Payload[0])
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("frame %d never delivered", i)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if rtt, _ := ss.RTT(); rtt > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server side never measured an RTT")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestParityCap checks that MaxParityOverhead lowers M of the policy's
// shapes and is validated.
func TestParityCap(t *testing.T) {
	heavy := fec.PolicyConfig{Table: []fec.Step{{MinLoss: 0, Params: fec.Params{K: 5, M: 4}}}}
	tests := []struct {
		cap  float64
		want fec.Params
	}{
		{0, fec.Params{K: 5, M: 2}}, // default 0.5
		{0.8, fec.Params{K: 5, M: 4}},
		{0.1, fec.Params{K: 5, M: 1}}, // at least one parity packet
	}
	for _, tt := range tests {
		p := newFlowPair(t, []string{CapFEC}, SenderConfig{Policy: heavy, MaxParityOverhead: tt.cap}, rxConfig())
		if got := p.tx.Stats().FEC; got != tt.want {
			t.Errorf("cap %v: shape %v, want %v", tt.cap, got, tt.want)
		}
	}
	p := newFlowPair(t, []string{CapFEC}, SenderConfig{}, rxConfig())
	if _, err := p.cmux.NewSender(9, SenderConfig{MaxParityOverhead: 1.5}); err == nil {
		t.Fatal("MaxParityOverhead 1.5 accepted")
	}
}
