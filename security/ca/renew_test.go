package ca

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// flakyIssuer fails while fail is set.
type flakyIssuer struct {
	ca   *CA
	fail atomic.Bool
}

func (f *flakyIssuer) Issue(id Identity, lifetime time.Duration, opts ...IssueOption) (*tls.Certificate, error) {
	if f.fail.Load() {
		return nil, errors.New("CA unreachable")
	}
	return f.ca.Issue(id, lifetime, opts...)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestRenewer(t *testing.T, clk *fakeClock, iss Issuer, lifetime time.Duration) (*Renewer, chan *tls.Certificate) {
	t.Helper()
	renewed := make(chan *tls.Certificate, 16)
	r, err := NewRenewer(RenewerConfig{
		Issuer:   iss,
		Identity: Identity{Role: "gateway", Name: "gw-1"},
		Lifetime: lifetime,
		Now:      clk.Now,
		After:    clk.After,
		Logger:   quietLogger(),
		OnRenew:  func(c *tls.Certificate) { renewed <- c },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	<-renewed // the first certificate
	return r, renewed
}

func TestRenewerSchedule(t *testing.T) {
	clk := newFakeClock()
	c := newTestCA(t, "prod", clk.Now)
	r, renewed := newTestRenewer(t, clk, c, 3*time.Hour)
	first, err := r.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "renewer to wait", func() bool { return clk.pending() == 1 })

	// Nothing happens before 2/3 of the lifetime.
	clk.Advance(2*time.Hour - time.Second)
	eventually(t, "renewer to wait again", func() bool { return clk.pending() == 1 })
	if cur, _ := r.Certificate(); cur != first {
		t.Fatal("renewed early")
	}
	clk.Advance(time.Second)
	second := <-renewed
	if second == first || !second.Leaf.NotAfter.Equal(t0.Add(5*time.Hour)) {
		t.Fatalf("second certificate expires %v, want %v", second.Leaf.NotAfter, t0.Add(5*time.Hour))
	}
	hello, err := r.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil || hello != second {
		t.Fatal("GetCertificate does not return the renewed certificate")
	}
	req, err := r.GetClientCertificate(&tls.CertificateRequestInfo{})
	if err != nil || req != second {
		t.Fatal("GetClientCertificate does not return the renewed certificate")
	}
	// The next renewal is 2/3 into the new certificate's life.
	eventually(t, "renewer to wait", func() bool { return clk.pending() == 1 })
	clk.Advance(2 * time.Hour)
	<-renewed
	if s := r.Stats(); s.Renewals != 3 || s.Failures != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRenewerRetries(t *testing.T) {
	clk := newFakeClock()
	c := newTestCA(t, "prod", clk.Now)
	iss := &flakyIssuer{ca: c}
	r, renewed := newTestRenewer(t, clk, iss, 3*time.Hour)
	first, _ := r.Certificate()
	eventually(t, "renewer to wait", func() bool { return clk.pending() == 1 })

	iss.fail.Store(true)
	clk.Advance(2 * time.Hour)
	eventually(t, "first failure", func() bool { return r.Stats().Failures == 1 })
	eventually(t, "retry wait", func() bool { return clk.pending() == 1 })
	// Retries come every RetryInterval.
	clk.Advance(DefaultRetryInterval)
	eventually(t, "second failure", func() bool { return r.Stats().Failures == 2 })
	if r.Stats().LastError == nil {
		t.Fatal("LastError not set")
	}
	if cur, err := r.Certificate(); err != nil || cur != first {
		t.Fatalf("still-valid certificate not served: %v", err)
	}

	iss.fail.Store(false)
	eventually(t, "retry wait", func() bool { return clk.pending() == 1 })
	clk.Advance(DefaultRetryInterval)
	<-renewed
	if s := r.Stats(); s.Renewals != 2 || s.LastError != nil {
		t.Fatalf("stats %+v", s)
	}
}

func TestRenewerExpires(t *testing.T) {
	clk := newFakeClock()
	c := newTestCA(t, "prod", clk.Now)
	iss := &flakyIssuer{ca: c}
	r, _ := newTestRenewer(t, clk, iss, time.Minute)
	iss.fail.Store(true)
	// Near expiry the retry interval shrinks to half the remaining time.
	for i := 0; i < 20 && clk.Now().Before(t0.Add(time.Minute)); i++ {
		eventually(t, "renewer to wait", func() bool { return clk.pending() == 1 })
		clk.Advance(10 * time.Second)
	}
	clk.Advance(time.Second)
	if _, err := r.Certificate(); err == nil {
		t.Fatal("expired certificate served")
	}
	if _, err := r.GetCertificate(nil); err == nil {
		t.Fatal("expired certificate served to TLS")
	}
}

func TestRenewNowAfterRotation(t *testing.T) {
	clk := newFakeClock()
	c := newTestCA(t, "prod", clk.Now)
	r, renewed := newTestRenewer(t, clk, c, 3*time.Hour)
	if err := c.Rotate(RotateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := r.Renew(); err != nil {
		t.Fatal(err)
	}
	cert := <-renewed
	if err := cert.Leaf.CheckSignatureFrom(c.Certificate()); err != nil {
		t.Fatalf("renewed certificate not from the new CA: %v", err)
	}
}

func TestRenewerConfigErrors(t *testing.T) {
	clk := newFakeClock()
	c := newTestCA(t, "prod", clk.Now)
	tests := []struct {
		name string
		cfg  RenewerConfig
	}{
		{"no issuer", RenewerConfig{Identity: Identity{Role: "r", Name: "n"}}},
		{"no role", RenewerConfig{Issuer: c, Identity: Identity{Name: "n"}}},
		{"bad cluster", RenewerConfig{Issuer: c, Identity: Identity{Cluster: "X", Role: "r", Name: "n"}}},
		{"fraction", RenewerConfig{Issuer: c, Identity: Identity{Role: "r", Name: "n"}, RenewFraction: 1}},
		{"issue fails", RenewerConfig{Issuer: c, Identity: Identity{Role: "r", Name: "n"}, Lifetime: time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r, err := NewRenewer(tt.cfg); err == nil {
				r.Close()
				t.Fatal("NewRenewer succeeded")
			}
		})
	}
}
