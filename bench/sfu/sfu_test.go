package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/bench/loadgen"

	"github.com/jetstreamproto/jsp/bench/sfu/load"
	"go.uber.org/goleak"
)

// TestMain also serves as the client processes of TestEndToEnd: the
// orchestrator starts its own executable with "client", which in a test
// is this binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "client" {
		if err := clientMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "sfu client:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// TestEndToEnd builds `jsp`, runs a small audio room through the
// orchestrator (a real server and client processes over loopback QUIC)
// and checks the result line. It asserts no speed: only that frames were
// forwarded and accounted for.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts processes")
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "jsp"), "github.com/jetstreamproto/jsp/cmd/jsp")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "out.txt")
	err := orchestrate([]string{"-bin", dir, "-scenarios", "audio", "-systems", "jsp", "-runs", "1",
		"-audio-publishers", "2", "-audio-subscribers", "3", "-warmup", "500ms", "-window", "1s", "-drain", "300ms",
		"-sub-procs", "1", "-out", out})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := loadgen.ParseLines(string(b))
	if len(lines) != 1 {
		t.Fatalf("%d result lines:\n%s", len(lines), b)
	}
	l := lines[0]
	if l.Get("system") != "jsp" || l.Get("scenario") != "audio" || l.Get("rooms") != "1" {
		t.Errorf("labels: %v", l)
	}
	exp, _ := l.Float("frames-expected")
	lost, _ := l.Float("frames-lost")
	fwd, _ := l.Float("forwarded-pps")
	// 2 talkers x 3 subscriptions x 50 frames/s x 1 s.
	if exp < 250 || exp > 350 {
		t.Errorf("frames expected %v, want about 300", exp)
	}
	if fwd <= 0 || lost >= exp {
		t.Errorf("nothing forwarded: %v", l)
	}
	if l.Get("bad") != "0" {
		t.Errorf("malformed frames: %v", l)
	}
}

func TestAssignListeners(t *testing.T) {
	tests := []struct {
		listeners []int
		procs     int
		want      []string
	}{
		{[]int{90}, 2, []string{"0:45:0", "0:45:45"}},
		{[]int{67, 67, 66}, 2, []string{"0:67:0,1:33:0", "1:34:33,2:66:0"}},
		{[]int{5}, 8, []string{"0:1:0", "0:1:1", "0:1:2", "0:1:3", "0:1:4"}},
		{[]int{3}, 1, []string{"0:3:0"}},
	}
	for _, tt := range tests {
		got := assignListeners(load.Plan{Rooms: len(tt.listeners), Listeners: tt.listeners}, tt.procs)
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("%v over %d: %q, want %q", tt.listeners, tt.procs, got, tt.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	h := &load.Hist{}
	for range 190 {
		h.Record(2 * time.Millisecond)
	}
	lines := []string{
		"result kind=sent stream=a/0 frames=100 packets=100",
		"result kind=sent stream=b/1 frames=50 packets=100",
		"result kind=rx stream=a/0 subs=1 frames=100 packets=100 bad=0",
		"result kind=rx stream=b/1 subs=2 frames=90 packets=180 bad=1",
		"result kind=latency hist=" + h.String(),
		"not a result",
	}
	l, err := summarize(lines, 2*time.Second, time.Second, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"forwarded-pps": "140", "expected-pps": "150", "in-pps": "100", "server-cores": "0.5",
		"client-cores": "1.5", "pps-per-core": "280", "frames-expected": "200", "frames-lost": "10",
		"loss": "0.05", "bad": "1", "p99-us": "inf",
	}
	for k, v := range want {
		if got := l.Get(k); got != v {
			t.Errorf("%s = %q, want %q (%v)", k, got, v, l)
		}
	}
	if p50, _ := l.Float("p50-us"); p50 < 2000 || p50 > 2100 {
		t.Errorf("p50 = %v", p50)
	}
	if _, err := summarize(lines[4:], time.Second, time.Second, 0); err == nil {
		t.Error("summary without send results")
	}
}

func TestParseRcvbufErrors(t *testing.T) {
	snmp := "Ip: Forwarding\nIp: 1\nUdp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\nUdp: 30914039 19413 270926 18841037 270925 0\nUdpLite: InDatagrams\nUdpLite: 0\n"
	tests := []struct {
		in   string
		want int64
	}{
		{snmp, 270925},
		{"Udp: InDatagrams\nUdp: 5\n", 0},
		{"", 0},
	}
	for _, tt := range tests {
		if got := parseRcvbufErrors(tt.in); got != tt.want {
			t.Errorf("parseRcvbufErrors = %d, want %d", got, tt.want)
		}
	}
	if udpRcvbufErrors() < 0 {
		t.Error("negative counter")
	}
}
