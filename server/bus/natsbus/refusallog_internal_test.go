package natsbus

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestRefusalLog: refusals are logged once per window per reason; the
// next line of a reason counts the ones left out; the reasons beyond the
// cap share one window.
func TestRefusalLog(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	r := newRefusalLog(slog.New(slog.NewTextHandler(&buf, nil)), 10*time.Second, func() time.Time { return now })
	count := func(subs ...string) int {
		n := 0
		for _, l := range strings.Split(buf.String(), "\n") {
			ok := l != ""
			for _, s := range subs {
				ok = ok && strings.Contains(l, s)
			}
			if ok {
				n++
			}
		}
		return n
	}
	for range 50 {
		r.log("CERT_EXPIRED", "natsbus: client refused", "code", "CERT_EXPIRED")
	}
	r.log("WRONG_ROLE", "natsbus: client refused", "code", "WRONG_ROLE")
	if a, b := count("code=CERT_EXPIRED"), count("code=WRONG_ROLE"); a != 1 || b != 1 {
		t.Fatalf("lines within the window: %d CERT_EXPIRED, %d WRONG_ROLE; want 1 each:\n%s", a, b, &buf)
	}
	now = now.Add(9 * time.Second)
	r.log("CERT_EXPIRED", "natsbus: client refused", "code", "CERT_EXPIRED")
	if n := count("code=CERT_EXPIRED"); n != 1 {
		t.Fatalf("logged again within the window:\n%s", &buf)
	}
	now = now.Add(time.Second)
	r.log("CERT_EXPIRED", "natsbus: client refused", "code", "CERT_EXPIRED")
	if n := count("code=CERT_EXPIRED", "suppressed=50"); n != 1 {
		t.Fatalf("next window's line does not count 50 suppressed:\n%s", &buf)
	}

	// Beyond the cap, new reasons share one window.
	buf.Reset()
	for i := range maxRefusalReasons + 10 {
		r.log(fmt.Sprint("reason-", i), "refused", "i", i)
	}
	if n := count("refused"); n != maxRefusalReasons-2+1 {
		t.Fatalf("%d lines for %d reasons, want %d", n, maxRefusalReasons+10, maxRefusalReasons-1)
	}
	if len(r.reasons) > maxRefusalReasons+1 {
		t.Fatalf("%d reasons held", len(r.reasons))
	}
}
