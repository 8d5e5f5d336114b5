package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jetstreamproto/jsp/bench/loadgen"
	"github.com/jetstreamproto/jsp/bench/procs"
	"github.com/jetstreamproto/jsp/bench/sfu/load"
	"github.com/jetstreamproto/jsp/security/token"
)

// sfuTable is the report: medians per system over the runs.
var sfuTable = loadgen.Table{
	Row:     []string{"scenario"},
	Systems: []string{"jsp", "jsp-nack", "livekit"},
	Ratios:  [][2]string{{"jsp", "livekit"}, {"jsp-nack", "livekit"}},
	Metrics: []string{"expected-pps", "forwarded-pps", "server-cores", "pps-per-core", "p50-us", "p99-us", "p999-us", "loss", "client-cores"},
}

// orchestrator runs the measurements.
type orchestrator struct {
	bin        string
	ws         *procs.Workspace
	keyFile    string // token signing key (PEM) the clients sign with
	pubFile    string // its public key for the server
	subProcs   int
	warmup     time.Duration
	vwarmup    time.Duration
	window     time.Duration
	drain      time.Duration
	audioPubs  int
	audioSubs  int
	roomCap    int
	videoSubs  int
	frameBytes int
}

const audience = "sfu-bench"

func orchestrate(args []string) error {
	fs := flag.NewFlagSet("sfu", flag.ContinueOnError)
	bin := fs.String("bin", "bin", "directory with the jsp binary (and livekit-server and lkbench for -systems livekit)")
	scenarios := fs.String("scenarios", "audio,video", "scenarios to run: audio, video")
	systems := fs.String("systems", "jsp", "systems to run: jsp (no repair, no playout delay), jsp-nack (NACK, jitter buffer up to 200 ms), livekit")
	runs := fs.Int("runs", 3, "repetitions; the order of systems rotates between them")
	o := &orchestrator{}
	fs.IntVar(&o.subProcs, "sub-procs", 2, "subscriber processes")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "audio: sending before the window")
	fs.DurationVar(&o.vwarmup, "video-warmup", 10*time.Second,
		"video: sending before the window (LiveKit's allocator takes several seconds to move subscribers up to their layer)")
	fs.DurationVar(&o.window, "window", 5*time.Second, "measurement window")
	fs.DurationVar(&o.drain, "drain", time.Second, "wait for late frames after the window")
	fs.IntVar(&o.audioPubs, "audio-publishers", 10, "audio: talkers")
	fs.IntVar(&o.audioSubs, "audio-subscribers", 100, "audio: subscriptions per talker's track (the other talkers and the listeners)")
	fs.IntVar(&o.roomCap, "room-cap", load.DefaultBenchRoomCap, "participants per room (jsp server --voice-max-participants); scenarios that need more use several rooms")
	fs.IntVar(&o.videoSubs, "video-subscribers", 200, "video: subscribers of the camera")
	fs.IntVar(&o.frameBytes, "frame-bytes", 80, "audio: Opus frame size in bytes")
	outPath := fs.String("out", "", "append result lines to this file")
	report := fs.String("report", "", "print the markdown table for a results file and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *report != "" {
		b, err := os.ReadFile(*report)
		if err != nil {
			return err
		}
		fmt.Print(sfuTable.Markdown(loadgen.ParseLines(string(b))))
		return nil
	}
	o.bin = *bin
	ws, err := procs.OpenWorkspace("sfu-", *outPath)
	if err != nil {
		return err
	}
	defer ws.Close()
	o.ws = ws
	if err := o.writeKeys(); err != nil {
		return err
	}
	var all []loadgen.Line
	sys := strings.Split(*systems, ",")
	for _, sc := range strings.Split(*scenarios, ",") {
		for run := 1; run <= *runs; run++ {
			for i := range sys {
				s := sys[(i+run-1)%len(sys)]
				l, err := o.measure(s, sc, run)
				if err != nil {
					fmt.Fprintf(os.Stderr, "sfu: %s %s run %d: %v\n", s, sc, run, err)
					continue
				}
				fmt.Println(l.String())
				if ws.Out != nil {
					fmt.Fprintln(ws.Out, l.String())
				}
				all = append(all, l)
			}
		}
	}
	fmt.Println()
	fmt.Print(sfuTable.Markdown(all))
	return nil
}

// writeKeys creates the token key pair: the server verifies with the
// public key, the client processes sign their participants' tokens with
// the private one.
func (o *orchestrator) writeKeys() error {
	k, err := token.GenerateKey(nil)
	if err != nil {
		return err
	}
	priv, err := token.MarshalPrivateKeyPEM(k)
	if err != nil {
		return err
	}
	pub, err := token.MarshalPublicKeyPEM(k.Public())
	if err != nil {
		return err
	}
	o.keyFile, o.pubFile = filepath.Join(o.ws.Dir, "token.key"), filepath.Join(o.ws.Dir, "token.pub")
	if err := os.WriteFile(o.keyFile, priv, 0o600); err != nil {
		return err
	}
	return os.WriteFile(o.pubFile, pub, 0o644)
}

// scenarioOf builds the named scenario from the flags.
func (o *orchestrator) scenarioOf(name string) (load.Scenario, error) {
	switch name {
	case "audio":
		return load.AudioScenario(o.audioPubs, o.audioSubs, o.frameBytes), nil
	case "video":
		return load.VideoScenario(o.videoSubs), nil
	}
	return load.Scenario{}, fmt.Errorf("unknown scenario %q", name)
}

// server is a running system under test and how its clients reach it.
type server struct {
	proc      *procs.Proc
	clientBin string
	// clientArgs lead every client process's arguments.
	clientArgs []string
}

// startServer starts sys on a fresh port.
func (o *orchestrator) startServer(sys string, run int) (*server, error) {
	port, err := procs.FreePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	switch sys {
	case "jsp", "jsp-nack":
		dir := filepath.Join(o.ws.Dir, fmt.Sprintf("jsp-%d-%d", run, port))
		p, err := procs.Start("jsp", filepath.Join(o.bin, "jsp"), []string{"server",
			"--data-dir", dir, "--quic", addr, "--tcp", "off", "--ws", "off",
			"--cert", o.ws.Cert, "--key", o.ws.Key, "--log-level", "warn",
			"--auth", "token", "--token-keys", o.pubFile, "--audience", audience,
			"--max-sessions", "20000", "--allow", "127.0.0.0/8", "--max-handshakes-per-ip", "4096",
			"--rate-conn", "-1", "--rate-user", "-1", "--rate-channel", "-1", "--rate-conn-attempts", "-1", "--rate-command", "-1",
			"--voice-max-participants", strconv.Itoa(o.roomCap),
		}, procs.Printed("JSP server listening"), 30*time.Second)
		if err != nil {
			return nil, err
		}
		args := []string{"client", "-url", "jsp+quic://" + addr, "-key", o.keyFile, "-audience", audience}
		if sys == "jsp-nack" {
			// The SDK's repair on, as an app would run it: NACK, and a
			// jitter buffer that waits up to 200 ms for a repair.
			args = append(args, "-nack", "200ms")
		}
		return &server{proc: p, clientBin: o.ws.Self, clientArgs: args}, nil
	case "livekit":
		return o.startLiveKit(port)
	}
	return nil, fmt.Errorf("unknown system %q", sys)
}

// measure runs one scenario against one system: a fresh server, one
// publisher process and -sub-procs subscriber processes.
func (o *orchestrator) measure(sys, scName string, run int) (loadgen.Line, error) {
	sc, err := o.scenarioOf(scName)
	if err != nil {
		return nil, err
	}
	pl, err := load.PlanRooms(sc, o.roomCap)
	if err != nil {
		return nil, err
	}
	warmup := o.warmup
	if sc.Video {
		warmup = o.vwarmup
	}
	srv, err := o.startServer(sys, run)
	if err != nil {
		return nil, err
	}
	defer srv.proc.Stop(15 * time.Second)
	common := append(append([]string(nil), srv.clientArgs...), "-scenario", scName, "-room-prefix", fmt.Sprintf("%s-%d", scName, run),
		"-publishers", strconv.Itoa(sc.Publishers), "-subscribers", strconv.Itoa(sc.Subscribers),
		"-frame-bytes", strconv.Itoa(o.frameBytes), "-warmup", warmup.String(), "-window", o.window.String(),
		"-room-cap", strconv.Itoa(o.roomCap))
	const setup = 3 * time.Minute
	pub, err := startChild("publisher", srv.clientBin, append(append([]string(nil), common...), "-role", "pub"))
	if err != nil {
		return nil, err
	}
	children := []*child{pub}
	defer func() {
		for _, c := range children {
			c.kill()
		}
	}()
	if err := pub.expect(load.Ready, setup, nil); err != nil {
		return nil, err
	}
	for i, assign := range assignListeners(pl, o.subProcs) {
		c, err := startChild(fmt.Sprintf("subscribers-%d", i), srv.clientBin,
			append(append([]string(nil), common...), "-role", "sub", "-assign", assign))
		if err != nil {
			return nil, err
		}
		children = append(children, c)
	}
	for _, c := range children[1:] {
		if err := c.expect(load.Ready, setup, nil); err != nil {
			return nil, err
		}
	}
	if err := pub.send(load.Go); err != nil {
		return nil, err
	}
	var results []string
	if err := pub.expect(load.PhaseWindowStart, warmup+time.Minute, &results); err != nil {
		return nil, err
	}
	t0, cpu0, ccpu0 := time.Now(), pidCPU(srv.proc.PID()), clientsCPU(children)
	avg, udp0 := loadAvg(), udpRcvbufErrors()
	if err := pub.expect(load.PhaseWindowEnd, o.window+time.Minute, &results); err != nil {
		return nil, err
	}
	t1, cpu1, ccpu1, udp1 := time.Now(), pidCPU(srv.proc.PID()), clientsCPU(children), udpRcvbufErrors()
	// The publisher reports what it sent once its streams have stopped.
	if err := pub.expect(load.SentDone, time.Minute, &results); err != nil {
		return nil, err
	}
	time.Sleep(o.drain)
	for _, c := range children {
		_ = c.send(load.Stop)
	}
	var errs []error
	for _, c := range children {
		errs = append(errs, c.finish(time.Minute, &results))
	}
	children = nil
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	rss, _ := loadgen.PIDRSS(srv.proc.PID())
	l, err := summarize(results, t1.Sub(t0), cpu1-cpu0, ccpu1-ccpu0)
	if err != nil {
		return nil, err
	}
	head := loadgen.Line{}.Add("bench", "sfu").Add("system", sys).Add("scenario", scName).Add("run", run).
		Add("rooms", pl.Rooms).Add("publishers", sc.Publishers).Add("subscribers", sc.Subscribers)
	// The machine's load average when the window opened: on a shared
	// machine it says how much else was competing for the cores.
	return append(append(head, l...), loadgen.Line{}.Add("server-rss-mb", float64(rss)/(1<<20)).Add("loadavg", avg).
		Add("udp-rcvbuf-drops", udp1-udp0)...), nil
}

// udpRcvbufErrors returns the machine's count of UDP datagrams the kernel
// dropped because a socket's receive buffer was full (/proc/net/snmp,
// Udp RcvbufErrors): on loopback, a receiver that falls behind loses
// datagrams there. It counts every process on the machine.
func udpRcvbufErrors() int64 {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0
	}
	return parseRcvbufErrors(string(b))
}

// parseRcvbufErrors reads Udp RcvbufErrors from /proc/net/snmp's text: a
// line of names, then a line of values.
func parseRcvbufErrors(snmp string) int64 {
	var names []string
	for _, line := range strings.Split(snmp, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				v, _ := strconv.ParseInt(f[i], 10, 64)
				return v
			}
		}
		return 0
	}
	return 0
}

// loadAvg returns the one-minute load average from /proc/loadavg, or "?".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

func pidCPU(pid int) time.Duration {
	d, _ := loadgen.PIDCPU(pid)
	return d
}

func clientsCPU(cs []*child) time.Duration {
	var d time.Duration
	for _, c := range cs {
		d += pidCPU(c.PID())
	}
	return d
}

// assignListeners splits the plan's listeners over n processes as
// -assign values (ROOM:COUNT:FIRST,...), as evenly as it can.
func assignListeners(pl load.Plan, n int) []string {
	total := 0
	for _, l := range pl.Listeners {
		total += l
	}
	n = max(min(n, total), 1)
	out := make([][]string, n)
	per := (total + n - 1) / n
	proc, inProc := 0, 0
	for r, l := range pl.Listeners {
		first := 0
		for first < l {
			take := min(l-first, per-inProc)
			out[proc] = append(out[proc], fmt.Sprintf("%d:%d:%d", r, take, first))
			first += take
			inProc += take
			if inProc == per {
				proc, inProc = proc+1, 0
			}
		}
	}
	var res []string
	for _, a := range out {
		if len(a) > 0 {
			res = append(res, strings.Join(a, ","))
		}
	}
	return res
}

// summarize turns the clients' result lines into the run's figures.
// Packets forwarded are the packets of window frames the subscribers got;
// expected are those the publisher sent in the window times the
// subscriptions of each stream; a frame not delivered counts as lost and
// as later than any in the percentiles.
func summarize(results []string, window, serverCPU, clientCPU time.Duration) (loadgen.Line, error) {
	sentFrames, sentPackets := map[string]float64{}, map[string]float64{}
	lat, lag := &load.Hist{}, &load.Hist{}
	var expFrames, expPackets, gotFrames, gotPackets, bad, sentTotal, rxLost, rxLate float64
	type rx struct{ subs, frames, packets float64 }
	var rxs []struct {
		stream string
		rx
	}
	for _, s := range results {
		l, ok := loadgen.ParseLine(s)
		if !ok {
			continue
		}
		f := func(k string) float64 { v, _ := l.Float(k); return v }
		switch l.Get("kind") {
		case "sent":
			sentFrames[l.Get("stream")] += f("frames")
			sentPackets[l.Get("stream")] += f("packets")
			sentTotal += f("packets")
		case "rx":
			rxs = append(rxs, struct {
				stream string
				rx
			}{l.Get("stream"), rx{f("subs"), f("frames"), f("packets")}})
			bad += f("bad")
			rxLost += f("rx-lost")
			rxLate += f("rx-late")
		case "latency", "lag":
			h, err := load.ParseHist(l.Get("hist"))
			if err != nil {
				return nil, err
			}
			if l.Get("kind") == "lag" {
				lag.Merge(h)
			} else {
				lat.Merge(h)
			}
		}
	}
	if len(sentFrames) == 0 || len(rxs) == 0 {
		return nil, fmt.Errorf("no send or receive results in %d lines", len(results))
	}
	for _, r := range rxs {
		expFrames += r.subs * sentFrames[r.stream]
		expPackets += r.subs * sentPackets[r.stream]
		gotFrames += r.frames
		gotPackets += r.packets
	}
	sec := window.Seconds()
	l := loadgen.Line{}.Add("window-s", sec).
		Add("in-pps", sentTotal/sec).
		Add("forwarded-pps", gotPackets/sec).
		Add("expected-pps", expPackets/sec).
		Add("server-cpu-s", serverCPU.Seconds()).
		Add("server-cores", serverCPU.Seconds()/sec).
		Add("client-cores", clientCPU.Seconds()/sec)
	if serverCPU > 0 {
		l = l.Add("pps-per-core", gotPackets/serverCPU.Seconds())
	}
	total := uint64(expFrames)
	if uint64(gotFrames) > total {
		total = uint64(gotFrames)
	}
	for _, q := range []struct {
		k string
		q float64
	}{{"p50-us", 0.5}, {"p99-us", 0.99}, {"p999-us", 0.999}} {
		v := lat.Quantile(q.q, total)
		if v < 0 {
			l = l.Add(q.k, "inf")
		} else {
			l = l.Add(q.k, v)
		}
	}
	lost := max(expFrames-gotFrames, 0)
	loss := 0.0
	if expFrames > 0 {
		loss = lost / expFrames
	}
	l = l.Add("frames-expected", expFrames).Add("frames-lost", lost).Add("loss", loss).Add("bad", bad).Add("sdk-lost", rxLost).Add("sdk-late", rxLate).
		Add("send-lag-p99-us", lag.Quantile(0.99, lag.Count()))
	return l, nil
}
