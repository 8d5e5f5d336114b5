package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jetstreamproto/jsp/bench/loadgen"
	"github.com/jetstreamproto/jsp/bench/procs"
)

// idleTable is the report: bytes per idle connection, medians and
// same-run ratios against Centrifugo (WebSocket) and the bare floors.
var idleTable = loadgen.Table{
	Row:     []string{"transport", "sessions"},
	Systems: []string{"jsp", "centrifugo", "bare"},
	Ratios:  [][2]string{{"jsp", "centrifugo"}, {"jsp", "bare"}},
	Metrics: []string{"rss-per-conn-b", "heap-per-conn-b", "live-heap-per-conn-b", "stack-per-conn-b", "goroutines-per-conn", "rss-mb"},
}

// variant is one server and the client that holds connections to it.
type variant struct {
	transport string // ws, tcp, quic
	system    string // jsp, centrifugo, bare
}

var allVariants = []variant{
	{"ws", "jsp"}, {"ws", "centrifugo"},
	{"tcp", "jsp"}, {"tcp", "bare"},
	{"quic", "jsp"}, {"quic", "bare"},
	// wss: the gateway terminating TLS itself (D40), against the same
	// bare crypto/tls floor as tcp. Not in the default set.
	{"wss", "jsp"}, {"wss", "bare"},
}

// bareKind maps a transport to the bare server and client kinds.
var bareKind = map[string]string{"tcp": "tls", "wss": "tls", "quic": "quic"}

type idleOrch struct {
	bin, self, work, cert, key string
	sessions                   []int
	sources                    int
	settle                     time.Duration
	concurrency                int
	out                        *os.File
}

func orchestrate(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	bin := fs.String("bin", "bin", "directory with the centrifugo and benchpeer binaries")
	sessions := fs.String("sessions", "10000,19000", "connection counts, ascending")
	runs := fs.Int("runs", 1, "repetitions")
	only := fs.String("transports", "ws,tcp,quic", "transports to measure: ws, tcp, quic, wss")
	sources := fs.Int("sources", 200, "loopback source addresses")
	settle := fs.Duration("settle", 3*time.Second, "wait after reaching a count before measuring")
	concurrency := fs.Int("concurrency", 16, "connections each client opens at once")
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
		fmt.Print(idleTable.Markdown(loadgen.ParseLines(string(b))))
		return nil
	}
	o := &idleOrch{bin: *bin, sources: *sources, settle: *settle, concurrency: *concurrency}
	for _, s := range strings.Split(*sessions, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return fmt.Errorf("-sessions %q", *sessions)
		}
		o.sessions = append(o.sessions, n)
	}
	ws, err := procs.OpenWorkspace("idle-", *outPath)
	if err != nil {
		return err
	}
	defer ws.Close()
	o.self, o.work, o.cert, o.key, o.out = ws.Self, ws.Dir, ws.Cert, ws.Key, ws.Out
	var all []loadgen.Line
	for run := 1; run <= *runs; run++ {
		for _, v := range allVariants {
			if !strings.Contains(","+*only+",", ","+v.transport+",") {
				continue
			}
			ls, err := o.measure(v, run)
			if err != nil {
				fmt.Fprintf(os.Stderr, "idle: %s %s run %d: %v\n", v.system, v.transport, run, err)
			}
			all = append(all, ls...)
		}
	}
	fmt.Println()
	fmt.Print(idleTable.Markdown(all))
	return nil
}

// measure runs one variant through every connection count.
func (o *idleOrch) measure(v variant, run int) ([]loadgen.Line, error) {
	port, err := procs.FreePort()
	if err != nil {
		return nil, err
	}
	ctlPort, err := procs.FreePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ctl := fmt.Sprintf("127.0.0.1:%d", ctlPort)
	var srv *procs.Proc
	var cbin string
	var cargs []string
	heap := func() (float64, error) { return ctlHeap(ctl) }
	// live reads the servers built here after two collections (nil for
	// Centrifugo): the heap the connections hold without what pools keep
	// through one collection, and the stacks and goroutines.
	live := func() (memStats, error) { return ctlMem(ctl, 2) }
	switch v.system {
	case "jsp":
		srv, err = procs.Start("jsp", o.self, []string{"serve", "jsp", "-transport", v.transport, "-addr", addr,
			"-ctl", ctl, "-cert", o.cert, "-key", o.key}, procs.Printed("ready"), 30*time.Second)
		cbin, cargs = o.self, []string{"client", "-kind", "jsp-" + v.transport, "-addr", addr}
	case "bare":
		srv, err = procs.Start("bare", o.self, []string{"serve", bareKind[v.transport],
			"-addr", addr, "-ctl", ctl, "-cert", o.cert, "-key", o.key}, procs.Printed("ready"), 30*time.Second)
		cbin, cargs = o.self, []string{"client", "-kind", bareKind[v.transport], "-addr", addr}
	case "centrifugo":
		cfg, cerr := procs.CentrifugoConfig(addr, "", "")
		if cerr != nil {
			return nil, cerr
		}
		path := filepath.Join(o.work, fmt.Sprintf("centrifugo-%d.json", port))
		if err := os.WriteFile(path, cfg, 0o600); err != nil {
			return nil, err
		}
		srv, err = procs.Start("centrifugo", filepath.Join(o.bin, "centrifugo"), []string{"--config", path},
			procs.Listening(addr), 30*time.Second)
		cbin, cargs = filepath.Join(o.bin, "benchpeer"), []string{"idle", "centrifugo", "-addr", "ws://" + addr + "/connection/websocket"}
		heap = func() (float64, error) { return promHeap("http://" + addr + "/metrics") }
		live = nil
	}
	if err != nil {
		return nil, err
	}
	defer srv.Stop(15 * time.Second)
	time.Sleep(o.settle)
	rss0, err := loadgen.PIDRSS(srv.PID())
	if err != nil {
		return nil, err
	}
	heap0, err := heap()
	if err != nil {
		return nil, fmt.Errorf("heap: %w", err)
	}
	var live0 memStats
	if live != nil {
		if live0, err = live(); err != nil {
			return nil, fmt.Errorf("heap: %w", err)
		}
	}
	cargs = append(cargs, "-sources", strconv.Itoa(o.sources), "-concurrency", strconv.Itoa(o.concurrency))
	cmd := exec.Command(cbin, cargs...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	lines := bufio.NewScanner(stdout)
	var out []loadgen.Line
	for _, n := range o.sessions {
		t0 := time.Now()
		fmt.Fprintln(stdin, n)
		if !lines.Scan() {
			return out, fmt.Errorf("client ended: %v; server: %s", lines.Err(), srv.Log())
		}
		if got := lines.Text(); got != fmt.Sprintf("at %d", n) {
			return out, fmt.Errorf("client: %s", got)
		}
		connect := time.Since(t0)
		time.Sleep(o.settle)
		rss, err := loadgen.PIDRSS(srv.PID())
		if err != nil {
			return out, err
		}
		h, err := heap()
		if err != nil {
			return out, err
		}
		l := loadgen.Line{}.Add("bench", "idle").Add("system", v.system).Add("transport", v.transport).
			Add("sessions", n).Add("run", run).
			Add("rss-per-conn-b", float64(rss-rss0)/float64(n)).
			Add("heap-per-conn-b", (h-heap0)/float64(n)).
			Add("rss-mb", float64(rss)/(1<<20)).Add("rss0-mb", float64(rss0)/(1<<20)).
			Add("heap-mb", h/(1<<20)).Add("connect-s", connect.Seconds())
		if live != nil {
			m, err := live()
			if err != nil {
				return out, err
			}
			l = l.Add("live-heap-per-conn-b", (float64(m.HeapAlloc)-float64(live0.HeapAlloc))/float64(n)).
				Add("stack-per-conn-b", (float64(m.StackInuse)-float64(live0.StackInuse))/float64(n)).
				Add("goroutines-per-conn", float64(m.Goroutines-live0.Goroutines)/float64(n))
		}
		fmt.Println(l.String())
		if o.out != nil {
			fmt.Fprintln(o.out, l.String())
		}
		out = append(out, l)
	}
	return out, nil
}

// ctlHeap reads HeapInuse after a forced GC from a server built here.
func ctlHeap(ctl string) (float64, error) {
	ms, err := ctlMem(ctl, 1)
	return float64(ms.HeapInuse), err
}

// ctlMem reads a server's /mem after gcs forced collections.
func ctlMem(ctl string, gcs int) (memStats, error) {
	var ms memStats
	resp, err := http.Get(fmt.Sprintf("http://%s/mem?gcs=%d", ctl, gcs))
	if err != nil {
		return ms, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&ms)
	return ms, err
}

// promHeap reads go_memstats_heap_inuse_bytes from a Prometheus endpoint.
func promHeap(url string) (float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	return parsePromGauge(string(b), "go_memstats_heap_inuse_bytes")
}

// parsePromGauge returns the value of an unlabelled metric in the
// Prometheus text format.
func parsePromGauge(text, name string) (float64, error) {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == name {
			return strconv.ParseFloat(f[1], 64)
		}
	}
	return 0, fmt.Errorf("metric %s not found", name)
}
