package main

import (
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/bench/sfu/load"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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
