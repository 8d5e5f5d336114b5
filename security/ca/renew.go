package ca

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for a zero [RenewerConfig] field.
const (
	// DefaultRenewFraction is the part of a certificate's remaining
	// lifetime after which the Renewer reissues: at 2/3 there is a third
	// of the lifetime left to retry a failing CA.
	DefaultRenewFraction = 2.0 / 3.0
	// DefaultRetryInterval is the wait after a failed renewal. It shrinks
	// to half the remaining lifetime when the certificate is close to
	// expiry.
	DefaultRetryInterval = 10 * time.Second
)

// minRetry keeps a failing renewal from spinning when the certificate is
// about to expire.
const minRetry = 50 * time.Millisecond

// Issuer issues certificates; *CA is one.
type Issuer interface {
	Issue(id Identity, lifetime time.Duration, opts ...IssueOption) (*tls.Certificate, error)
}

// RenewerConfig configures a Renewer.
type RenewerConfig struct {
	// Issuer signs the certificates. Required.
	Issuer Issuer
	// Identity to request. Required.
	Identity Identity
	// Lifetime of each certificate. Zero means the issuer's default.
	Lifetime time.Duration
	// Options are passed to every Issue call (e.g. WithDNSNames).
	Options []IssueOption
	// RenewFraction of the lifetime (counted from when the certificate was
	// obtained) after which to renew. Zero means DefaultRenewFraction
	// (2/3); must be in (0, 1).
	RenewFraction float64
	// RetryInterval after a failed renewal. Zero means
	// DefaultRetryInterval (10 s).
	RetryInterval time.Duration
	// Now is the clock. Zero means time.Now.
	Now func() time.Time
	// After returns a channel that receives after d on the Now clock. Zero
	// means time.After. Tests inject a fake clock through Now and After.
	After func(d time.Duration) <-chan time.Time
	// Logger receives renewal failures. Zero means slog.Default().
	Logger *slog.Logger
	// OnRenew, if set, is called with each new certificate after it is
	// installed, from the goroutine that renewed it.
	OnRenew func(*tls.Certificate)
}

func (c *RenewerConfig) validate() error {
	var errs []error
	if c.Issuer == nil {
		errs = append(errs, errors.New("Issuer is required"))
	}
	// The cluster may be left to the issuer; role and name may not.
	if c.Identity.Cluster != "" {
		if err := ValidateCluster(c.Identity.Cluster); err != nil {
			errs = append(errs, err)
		}
	}
	if err := validComponent("role", c.Identity.Role, true); err != nil {
		errs = append(errs, err)
	}
	if err := validComponent("name", c.Identity.Name, true); err != nil {
		errs = append(errs, err)
	}
	if c.Lifetime < 0 {
		errs = append(errs, fmt.Errorf("Lifetime %v is negative", c.Lifetime))
	}
	if c.RenewFraction < 0 || c.RenewFraction >= 1 {
		errs = append(errs, fmt.Errorf("RenewFraction %v outside (0, 1)", c.RenewFraction))
	}
	if c.RetryInterval < 0 {
		errs = append(errs, fmt.Errorf("RetryInterval %v is negative", c.RetryInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ca: invalid renewer config: %w", err)
	}
	return nil
}

func (c *RenewerConfig) setDefaults() {
	if c.RenewFraction == 0 {
		c.RenewFraction = DefaultRenewFraction
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = DefaultRetryInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.After == nil {
		c.After = time.After
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// RenewerStats counts what a Renewer did.
type RenewerStats struct {
	// Renewals is the number of certificates obtained, the first included.
	Renewals uint64
	// Failures is the number of failed Issue calls.
	Failures uint64
	// LastError is the most recent failure, nil after a success.
	LastError error
}

// held is the installed certificate with its renewal time.
type held struct {
	cert    *tls.Certificate
	renewAt time.Time
}

// Renewer keeps a fresh certificate for one identity. It renews in its own
// goroutine, which Close stops and waits for. The TLS hooks read the
// current certificate atomically, so new handshakes use the new
// certificate while established connections carry on untouched.
type Renewer struct {
	cfg RenewerConfig

	cur  atomic.Pointer[held]
	kick chan struct{}

	issueMu sync.Mutex // serialises Issue calls from the loop and Renew

	statsMu sync.Mutex
	stats   RenewerStats // guarded by statsMu

	retryAt atomic.Pointer[time.Time] // set while renewals fail

	cancel context.CancelFunc
	done   chan struct{}
}

// NewRenewer obtains the first certificate (failing if it cannot) and
// starts the renewal goroutine.
func NewRenewer(cfg RenewerConfig) (*Renewer, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	r := &Renewer{cfg: cfg, kick: make(chan struct{}, 1), done: make(chan struct{})}
	if err := r.Renew(); err != nil {
		return nil, err
	}
	<-r.kick // sent by the first Renew; the loop has nothing to recompute yet
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.run(ctx)
	return r, nil
}

// Close stops the renewal goroutine and waits for it, including an Issue
// call in progress. The last certificate stays available.
func (r *Renewer) Close() error {
	r.cancel()
	<-r.done
	return nil
}

// Renew obtains a new certificate now, e.g. right after a CA rotation so
// that the service moves to the new CA before the old one's overlap ends.
func (r *Renewer) Renew() error {
	r.issueMu.Lock()
	defer r.issueMu.Unlock()
	obtained := r.cfg.Now()
	cert, err := r.cfg.Issuer.Issue(r.cfg.Identity, r.cfg.Lifetime, r.cfg.Options...)
	if err == nil && cert.Leaf == nil {
		err = errors.New("issuer returned a certificate without Leaf")
	}
	if err != nil {
		err = fmt.Errorf("ca: renew %s: %w", r.cfg.Identity, err)
		r.statsMu.Lock()
		r.stats.Failures++
		r.stats.LastError = err
		r.statsMu.Unlock()
		return err
	}
	// Count from when we asked, not from NotBefore, which is backdated.
	life := cert.Leaf.NotAfter.Sub(obtained)
	renewAt := obtained.Add(time.Duration(float64(life) * r.cfg.RenewFraction))
	r.cur.Store(&held{cert: cert, renewAt: renewAt})
	r.retryAt.Store(nil)
	r.statsMu.Lock()
	r.stats.Renewals++
	r.stats.LastError = nil
	r.statsMu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
	if r.cfg.OnRenew != nil {
		r.cfg.OnRenew(cert)
	}
	return nil
}

// run is the renewal loop, owned by the Renewer and joined by Close.
func (r *Renewer) run(ctx context.Context) {
	defer close(r.done)
	for {
		due := r.cur.Load().renewAt
		if at := r.retryAt.Load(); at != nil {
			due = *at
		}
		wait := due.Sub(r.cfg.Now())
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-r.kick:
				continue // Renew ran elsewhere; recompute the due time.
			case <-r.cfg.After(wait):
				continue // Recheck: the clock may have moved less than asked.
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err := r.Renew(); err != nil {
			retry := r.retryDelay()
			at := r.cfg.Now().Add(retry)
			r.retryAt.Store(&at)
			r.cfg.Logger.Warn("certificate renewal failed", "identity", r.cfg.Identity.String(),
				"err", err, "retry_in", retry)
		}
		// Drain the kick that our own Renew sent.
		select {
		case <-r.kick:
		default:
		}
	}
}

// retryDelay is RetryInterval, or half the remaining lifetime when that is
// shorter, but at least minRetry.
func (r *Renewer) retryDelay() time.Duration {
	d := r.cfg.RetryInterval
	if left := r.cur.Load().cert.Leaf.NotAfter.Sub(r.cfg.Now()) / 2; left < d {
		d = left
	}
	return max(d, minRetry)
}

// Certificate returns the current certificate. It fails once the current
// certificate has expired (renewals kept failing): presenting it would only
// move the failure to the peer.
func (r *Renewer) Certificate() (*tls.Certificate, error) {
	h := r.cur.Load()
	if now := r.cfg.Now(); now.After(h.cert.Leaf.NotAfter) {
		r.statsMu.Lock()
		last := r.stats.LastError
		r.statsMu.Unlock()
		if last == nil {
			last = errors.New("no renewal attempted yet")
		}
		return nil, fmt.Errorf("ca: certificate for %s expired at %s: %w",
			r.cfg.Identity, h.cert.Leaf.NotAfter.UTC().Format(time.RFC3339), last)
	}
	return h.cert, nil
}

// GetCertificate is a tls.Config.GetCertificate hook.
func (r *Renewer) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.Certificate()
}

// GetClientCertificate is a tls.Config.GetClientCertificate hook.
func (r *Renewer) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.Certificate()
}

// Stats returns the renewal counters.
func (r *Renewer) Stats() RenewerStats {
	r.statsMu.Lock()
	defer r.statsMu.Unlock()
	return r.stats
}
