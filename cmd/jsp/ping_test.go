package main

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		d := make([]time.Duration, len(v))
		for i, x := range v {
			d[i] = time.Duration(x) * time.Millisecond
		}
		return d
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name     string
		sample   []time.Duration
		p50, p99 time.Duration
	}{
		{name: "one", sample: ms(7), p50: 7 * time.Millisecond, p99: 7 * time.Millisecond},
		{name: "two", sample: ms(9, 1), p50: time.Millisecond, p99: 9 * time.Millisecond},
		{name: "odd", sample: ms(5, 1, 3), p50: 3 * time.Millisecond, p99: 5 * time.Millisecond},
		{name: "hundred", sample: ms(hundred...), p50: 50 * time.Millisecond, p99: 99 * time.Millisecond},
		{name: "outlier", sample: ms(1, 1, 1, 1, 1, 1, 1, 1, 1, 100), p50: time.Millisecond, p99: 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := summarize(tt.sample)
			if s.p50 != tt.p50 || s.p99 != tt.p99 {
				t.Fatalf("p50 %v p99 %v, want %v %v", s.p50, s.p99, tt.p50, tt.p99)
			}
			if s.min > s.p50 || s.p50 > s.p99 || s.p99 > s.max {
				t.Fatalf("summary out of order: %+v", s)
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{500 * time.Nanosecond, "500ns"},
		{312 * time.Microsecond, "312µs"},
		{1234 * time.Microsecond, "1.23ms"},
		{2500 * time.Millisecond, "2.5s"},
	}
	for _, tt := range tests {
		if got := formatDuration(tt.d); got != tt.want {
			t.Errorf("formatDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestPingCommand(t *testing.T) {
	checkLeaks(t)
	srv := startCLIServer(t)
	for scheme, transport := range map[string]string{"jsp+quic": "quic", "jsp+tcp": "tcp", "wss": "ws"} {
		t.Run(scheme, func(t *testing.T) {
			out, _, err := runCLI(t, newPingCmd(), srv.url(scheme), "--pin", srv.pin, "-n", "5")
			if err != nil {
				t.Fatalf("ping: %v", err)
			}
			for _, re := range []string{
				`(?m)^transport: ` + transport + `$`,
				`(?m)^handshake: [0-9.]+(µs|ms|s)$`,
				`(?m)^rtt: +p50 [0-9.]+(ns|µs|ms|s)  p99 [0-9.]+(ns|µs|ms|s)  \(min .*, max .*, 5 pings\)$`,
			} {
				if !regexp.MustCompile(re).MatchString(out) {
					t.Errorf("output does not match %s:\n%s", re, out)
				}
			}
		})
	}
	// --insecure connects without a pin, and says what it costs.
	_, errOut, err := runCLI(t, newPingCmd(), srv.url("jsp+tcp"), "--insecure", "-n", "1")
	if err != nil || !strings.Contains(errOut, "not verified") {
		t.Fatalf("ping --insecure: %v, stderr %q", err, errOut)
	}
	// Without pin, CA or --insecure, the self-signed certificate is refused.
	if _, _, err := runCLI(t, newPingCmd(), srv.url("jsp+tcp"), "-n", "1"); err == nil {
		t.Fatal("ping trusted a self-signed certificate without --pin")
	}
	// --ca trusts the development certificate as its own CA.
	out, _, err := runCLI(t, newPingCmd(), srv.url("jsp+tcp"), "--ca", srv.certFile, "-n", "1")
	if err != nil || !strings.Contains(out, "transport: tcp") {
		t.Fatalf("ping --ca: %v\n%s", err, out)
	}
	// Automatic mode reports the transport that won.
	out, _, err = runCLI(t, newPingCmd(), srv.url("jsp"), "--pin", srv.pin, "-n", "2")
	if err != nil {
		t.Fatalf("ping jsp://: %v", err)
	}
	if !strings.Contains(out, "transport: quic") && !strings.Contains(out, "transport: tcp") {
		t.Fatalf("no transport in output:\n%s", out)
	}
}

func TestPingCommandErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{args: []string{"jsp://127.0.0.1:1", "-n", "0"}, want: "--count"},
		{args: []string{"jsp://127.0.0.1:1", "-i", "-1s"}, want: "--interval"},
		{args: []string{"http://127.0.0.1"}, want: "unknown scheme"},
		{args: []string{}, want: "accepts 1 arg"},
	}
	for _, tt := range tests {
		_, _, err := runCLI(t, newPingCmd(), tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ping %v: %v, want containing %q", tt.args, err, tt.want)
		}
	}
}

func TestClientCommandsRegistered(t *testing.T) {
	for _, name := range []string{"ping", "send", "recv"} {
		cmd, _, err := rootCmd.Find([]string{name})
		if err != nil || cmd.Name() != name {
			t.Errorf("%s not registered: %v", name, err)
			continue
		}
		for _, flag := range []string{"ca", "pin", "insecure", "timeout"} {
			if cmd.Flags().Lookup(flag) == nil {
				t.Errorf("%s has no --%s", name, flag)
			}
		}
	}
}
