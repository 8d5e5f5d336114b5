package gateway

import (
	"strings"
	"sync"
	"testing"
)

func TestMetricsFormat(t *testing.T) {
	m := newMetrics()
	m.sessions.add("quic", 2)
	m.sessions.add("quic", -1)
	m.sessions.add("tcp", 1)
	m.errors.add(`we"ird\code`+"\n", 3)
	var b strings.Builder
	if err := m.write(&b, []gauge{{"jsp_extra", "gauge", "An extra value.", 7}}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"# HELP jsp_sessions Open sessions by transport.\n# TYPE jsp_sessions gauge\n" +
			"jsp_sessions{transport=\"quic\"} 1\njsp_sessions{transport=\"tcp\"} 1\n",
		"# TYPE jsp_messages_in_total counter\n",
		`jsp_errors_total{code="we\"ird\\code\n"} 3` + "\n",
		"# HELP jsp_extra An extra value.\n# TYPE jsp_extra gauge\njsp_extra 7\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if m.sessions.value("quic") != 1 || m.sessions.value("none") != 0 {
		t.Fatal("value")
	}
}

func TestMetricsConcurrent(t *testing.T) {
	f := newFamily("x", "counter", "l", "h")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				f.add(string(rune('a'+i%3)), 1)
			}
		}()
	}
	wg.Wait()
	if f.value("a")+f.value("b")+f.value("c") != 8000 {
		t.Fatal("lost increments")
	}
}
