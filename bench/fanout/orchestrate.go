package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jetstreamproto/jsp/bench/loadgen"
	"github.com/jetstreamproto/jsp/bench/procs"
)

// fanoutTable is the report: medians per system and same-run ratios.
var fanoutTable = loadgen.Table{
	Row:     []string{"case", "deliveries"},
	Systems: []string{"jsp", "jsp-live", "jsp-base", "jsp-live-base", "jsp-shm", "centrifugo", "nats"},
	Ratios:  [][2]string{{"jsp", "centrifugo"}, {"jsp-live", "centrifugo"}, {"jsp", "nats"}, {"jsp", "jsp-base"}, {"jsp-live", "jsp-live-base"}},
	Metrics: []string{"delivered/s", "p50-us", "p99-us", "p999-us", "lost", "server-cpu-us/delivery"},
}

type orchestrator struct {
	bin      string
	work     string
	cert     string
	key      string
	runs     int
	cases    []string
	levels   []float64
	systems  []string
	driver   []string // extra loadgen flags for every driver
	out      *os.File
	self     string
	timeout  time.Duration
	jspExtra []string
	labels   string // more key=value fields for every result line, each after a comma
}

func orchestrate(args []string) error {
	fs := flag.NewFlagSet("fanout", flag.ContinueOnError)
	bin := fs.String("bin", "bin", "directory with the jsp, centrifugo and benchpeer binaries")
	cases := fs.String("cases", "1x1,1x100,1x10000,1000x10", "fan-out cases, CHANNELSxSUBSCRIBERS")
	levels := fs.String("deliveries", "20000,100000", "offered deliveries per second, one run per level")
	runs := fs.Int("runs", 3, "repetitions; the order of systems rotates between them")
	systems := fs.String("systems", "jsp,centrifugo,nats", "systems to run")
	duration := fs.Duration("duration", 5*time.Second, "measurement window")
	warmup := fs.Duration("warmup", time.Second, "load before the window")
	drain := fs.Duration("drain", 5*time.Second, "wait for late messages")
	workers := fs.Int("workers", 8, "publishing goroutines")
	outPath := fs.String("out", "", "append result lines to this file (default: stdout only)")
	report := fs.String("report", "", "print the markdown table for a results file and exit")
	findMax := fs.Bool("find-max", false, "capacity mode: raise the offered rate from the first -deliveries level by -step per system until it no longer keeps up (see findmax.go)")
	step := fs.Float64("step", 1.5, "capacity mode: factor between offered rates")
	maxP99 := fs.Duration("max-p99", time.Second, "capacity mode: a system whose p99 is above this does not keep up")
	maxLevel := fs.Float64("max-deliveries", 400000, "capacity mode: highest offered deliveries per second tried")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *report != "" {
		b, err := os.ReadFile(*report)
		if err != nil {
			return err
		}
		lines := loadgen.ParseLines(string(b))
		fmt.Print(fanoutTable.Markdown(lostAsLate(fixedRate(lines))))
		if s := capacitySummary(lines, float64(maxP99.Microseconds())); strings.Contains(s, "| jsp") {
			fmt.Println()
			fmt.Print(s)
		}
		return nil
	}
	o := &orchestrator{bin: *bin, runs: *runs, cases: strings.Split(*cases, ","), systems: strings.Split(*systems, ","),
		driver: []string{"-duration", duration.String(), "-warmup", warmup.String(), "-drain", drain.String(),
			"-workers", strconv.Itoa(*workers)},
		timeout: 10*time.Minute + *duration}
	for _, l := range strings.Split(*levels, ",") {
		v, err := strconv.ParseFloat(l, 64)
		if err != nil || v <= 0 {
			return fmt.Errorf("-deliveries %q: want positive numbers", *levels)
		}
		o.levels = append(o.levels, v)
	}
	ws, err := procs.OpenWorkspace("fanout-", *outPath)
	if err != nil {
		return err
	}
	defer ws.Close()
	o.self, o.work, o.cert, o.key, o.out = ws.Self, ws.Dir, ws.Cert, ws.Key, ws.Out
	if *findMax {
		o.labels = ",mode=find-max"
		return o.findMax(float64(maxP99.Microseconds()), *step, *maxLevel)
	}
	var all []loadgen.Line
	for _, c := range o.cases {
		if _, err := loadgen.ParseCase(c); err != nil {
			return err
		}
		for _, lvl := range o.levels {
			for run := 1; run <= o.runs; run++ {
				for i := range o.systems {
					// Rotate the order so that no system always runs first
					// on a cold machine or last on a hot one.
					sys := o.systems[(i+run-1)%len(o.systems)]
					l, err := o.measure(sys, c, lvl, run)
					if err != nil {
						fmt.Fprintf(os.Stderr, "fanout: %s %s %v run %d: %v\n", sys, c, lvl, run, err)
						continue
					}
					all = append(all, l)
				}
			}
		}
	}
	fmt.Println()
	fmt.Print(fanoutTable.Markdown(lostAsLate(all)))
	return nil
}

// fixedRate returns the lines of fixed-rate runs, leaving out those of the
// capacity mode, whose levels differ per system.
func fixedRate(lines []loadgen.Line) []loadgen.Line {
	var out []loadgen.Line
	for _, l := range lines {
		if l.Get("mode") != "find-max" {
			out = append(out, l)
		}
	}
	return out
}

// lostAsLate marks a percentile "inf" when more of the window's
// deliveries were lost than the percentile leaves out (p99 with over 1 %
// lost): a lost message is later than any that arrived. Lines written by
// the current driver already say so; older result files are read the
// same way.
func lostAsLate(lines []loadgen.Line) []loadgen.Line {
	for _, l := range lines {
		lost, ok1 := l.Float("lost")
		exp, ok2 := l.Float("expected")
		if !ok1 || !ok2 || exp <= 0 {
			continue
		}
		for key, q := range map[string]float64{"p50-us": 0.5, "p99-us": 0.99, "p999-us": 0.999} {
			if lost/exp > 1-q {
				for i := range l {
					if l[i].Key == key {
						l[i].Value = "inf"
					}
				}
			}
		}
	}
	return lines
}

// measure starts sys's server, runs its driver once and stops the server.
func (o *orchestrator) measure(sys, c string, level float64, run int) (loadgen.Line, error) {
	port, err := procs.FreePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var srv *procs.Proc
	var drvBin string
	var drvArgs []string
	switch sys {
	case "jsp", "jsp-shm", "jsp-base", "jsp-live", "jsp-live-base":
		// jsp-shm keeps the data directory on tmpfs: the same server
		// without the disk's fsync latency, to show what the durable
		// commit of every PUBLISH costs. jsp-base runs the binary
		// jsp-base from the same directory, an earlier build, so that a
		// change is measured against its baseline in the same run.
		dir := filepath.Join(o.work, fmt.Sprintf("jsp-%d", port))
		if sys == "jsp-shm" {
			dir = filepath.Join("/dev/shm", fmt.Sprintf("jsp-bench-%d", port))
			defer os.RemoveAll(dir)
		}
		exe := "jsp"
		if sys == "jsp-base" || sys == "jsp-live-base" {
			exe = "jsp-base"
		}
		args := []string{"server",
			"--data-dir", dir, "--quic", "off", "--tcp", "off", "--ws", addr,
			"--cert", o.cert, "--key", o.key, "--log-level", "warn",
			"--max-sessions", "20000", "--allow", "127.0.0.0/8", "--max-handshakes-per-ip", "4096",
			"--rate-conn", "-1", "--rate-user", "-1", "--rate-channel", "-1", "--rate-conn-attempts", "-1",
		}
		if sys == "jsp-live" || sys == "jsp-live-base" {
			// The benchmark's channels are live channels (D43): fanned
			// out without a commit, as Centrifugo's memory broker does
			// without history.
			args = append(args, "--live-channel", "bench.*")
		}
		srv, err = procs.Start(exe, filepath.Join(o.bin, exe), args, procs.Printed("JSP server listening"), 30*time.Second)
		drvBin, drvArgs = o.self, []string{"driver", sys, "-addr", "wss://" + addr + "/jsp"}
	case "centrifugo":
		cfg, cerr := procs.CentrifugoConfig(addr, o.cert, o.key)
		if cerr != nil {
			return nil, cerr
		}
		cfgPath := filepath.Join(o.work, fmt.Sprintf("centrifugo-%d.json", port))
		if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
			return nil, err
		}
		srv, err = procs.Start("centrifugo", filepath.Join(o.bin, "centrifugo"), []string{"--config", cfgPath},
			procs.Listening(addr), 30*time.Second)
		drvBin, drvArgs = filepath.Join(o.bin, "benchpeer"), []string{"driver", "centrifugo", "-addr", "wss://" + addr + "/connection/websocket"}
	case "nats":
		srv, err = procs.Start("nats", filepath.Join(o.bin, "benchpeer"), []string{"serve-nats", "-addr", addr},
			procs.Printed("ready"), 30*time.Second)
		drvBin, drvArgs = filepath.Join(o.bin, "benchpeer"), []string{"driver", "nats", "-addr", "nats://" + addr}
	default:
		return nil, fmt.Errorf("unknown system %q", sys)
	}
	if err != nil {
		return nil, err
	}
	defer srv.Stop(15 * time.Second)
	cpu0, _ := loadgen.PIDCPU(srv.PID())
	drvArgs = append(drvArgs, "-case", c, "-deliveries", strconv.FormatFloat(level, 'f', -1, 64),
		"-labels", "run="+strconv.Itoa(run)+o.labels)
	drvArgs = append(drvArgs, o.driver...)
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	var loadCPU0, loadCPU1 time.Duration
	out, err := procs.RunDriverPhases(ctx, drvBin, drvArgs, func(line string) {
		switch line {
		case loadgen.PhaseLoadStart:
			loadCPU0, _ = loadgen.PIDCPU(srv.PID())
		case loadgen.PhaseLoadEnd:
			loadCPU1, _ = loadgen.PIDCPU(srv.PID())
		}
	})
	cpu1, _ := loadgen.PIDCPU(srv.PID())
	rss, _ := loadgen.PIDRSS(srv.PID())
	if err != nil {
		return nil, fmt.Errorf("%w\nserver log: %s", err, lastLines(srv.Log(), 10))
	}
	lines := loadgen.ParseLines(out)
	if len(lines) != 1 {
		return nil, fmt.Errorf("driver printed %d result lines: %s", len(lines), out)
	}
	l := lines[0]
	// The server's CPU covers connecting the subscribers too, so per
	// delivery it is an upper bound; it is the same for every system.
	l = l.Add("server-cpu-s", (cpu1-cpu0).Seconds()).Add("server-rss-mb", float64(rss)/(1<<20))
	// The load's CPU (warm-up, window and drain) per delivery that
	// arrived in that time: the steadiest figure on a shared machine.
	l = l.Add("server-load-cpu-s", (loadCPU1 - loadCPU0).Seconds())
	if n, ok := l.Float("received"); ok && n > 0 {
		l = l.Add("server-cpu-us/delivery", (loadCPU1-loadCPU0).Seconds()*1e6/n)
	}
	fmt.Println(l.String())
	if o.out != nil {
		fmt.Fprintln(o.out, l.String())
	}
	return l, nil
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}
