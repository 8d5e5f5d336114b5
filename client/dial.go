package client

import (
	"context"
	"crypto/tls"
	"fmt"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// Dial connects to the JSP server at rawURL and completes the JSP handshake
// (JSP §11.1). See the package comment for the URL schemes. In automatic
// mode (jsp://) QUIC starts first and TLS over TCP follows after
// Options.HappyEyeballsDelay, or at once if QUIC fails; the first to
// complete the JSP handshake is kept and the other is closed.
//
// A server key that matches none of Options.Pins fails with an error
// wrapping ErrPinMismatch, and never falls back to another transport.
func Dial(ctx context.Context, rawURL string, opts Options) (*Client, error) {
	o := opts
	o.setDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	plan, err := newDialPlan(&o, rawURL)
	if err != nil {
		return nil, err
	}
	sigs, err := newSignatures(&o)
	if err != nil {
		return nil, err
	}
	l, err := plan.dial(ctx, rawURL, nil)
	if err != nil {
		return nil, err
	}
	c := newClient(l, plan, o)
	c.sigs = sigs
	sigs.attach(c)
	c.log.Debug("connected", "url", rawURL, "transport", string(l.kind), "handshake", l.handshake)
	return c, nil
}

// dialPlan knows how to dial each URL a Client may use: the Dial URL, the
// fallbacks and, after GOAWAY, the server's alternatives.
type dialPlan struct {
	opts *Options
	// tokens is the session token's state when Options.TokenSource is set.
	tokens *tokenState
	// urls are the Dial URL and then ReconnectOptions.Fallback, all
	// validated by newDialPlan.
	urls []string
}

func newDialPlan(o *Options, rawURL string) (*dialPlan, error) {
	p := &dialPlan{opts: o, urls: append([]string{rawURL}, o.Reconnect.Fallback...), tokens: newTokenState()}
	for _, u := range p.urls {
		if _, err := parseTarget(u); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// dial connects to one URL and completes the JSP handshake, within
// Options.DialTimeout. In automatic mode (jsp://) QUIC starts first and
// TLS over TCP follows after Options.HappyEyeballsDelay, or at once if QUIC
// fails; the first to complete the JSP handshake is kept and the other is
// closed. resume, when set, asks the server to resume that session (JSP
// §11.1 item 4).
func (p *dialPlan) dial(ctx context.Context, rawURL string, resume *wire.Resume) (*link, error) {
	o := p.opts
	t, err := parseTarget(rawURL)
	if err != nil {
		return nil, err
	}
	tlsConf, err := buildTLS(o, t.host)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()

	start := o.Now()
	d := &dialer{opts: o, target: t, tls: tlsConf, tokens: p.tokens, resume: resume}
	var sess *session.Session
	var kind transport.Kind
	if t.auto {
		attempts := []attempt[*session.Session]{
			{kind: transport.KindQUIC, dial: d.dialFunc(transport.KindQUIC)},
			{kind: transport.KindTCP, headStart: o.HappyEyeballsDelay, dial: d.dialFunc(transport.KindTCP)},
		}
		sess, kind, err = race(ctx, attempts, isFatal, func(s *session.Session) { _ = s.Close() })
	} else {
		kind = t.kind
		sess, err = d.dial(ctx, t.kind)
	}
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", rawURL, err)
	}
	return &link{sess: sess, kind: kind, handshake: o.Now().Sub(start), url: rawURL}, nil
}

// dialer connects one transport and runs the session handshake on it.
type dialer struct {
	opts   *Options
	target target
	tls    *tls.Config
	tokens *tokenState
	resume *wire.Resume
}

func (d *dialer) dialFunc(kind transport.Kind) func(ctx context.Context) (*session.Session, error) {
	return func(ctx context.Context) (*session.Session, error) { return d.dial(ctx, kind) }
}

// dial connects with one transport and completes the JSP handshake. A pin
// mismatch recorded during the TLS handshake is returned as such, whatever
// error the transport reports for the aborted handshake.
func (d *dialer) dial(ctx context.Context, kind transport.Kind) (*session.Session, error) {
	pv := &pinVerifier{pins: d.opts.Pins, host: d.target.host}
	conn, err := dialTransport(ctx, kind, d.target, pv.install(d.tls), d.opts)
	if err != nil {
		if m := pv.mismatch(); m != nil {
			return nil, m
		}
		return nil, err
	}
	info := d.opts.Info
	info.Resume = d.resume
	if d.opts.Credentials != nil {
		// Credentials may bind to this very connection (a device proof over
		// the TLS exporter), so they are made per connection, once its
		// handshake is complete (early.go).
		if err := awaitHandshake(ctx, conn); err != nil {
			_ = conn.CloseWithError(jsperr.Unauthenticated, "no credentials")
			return nil, err
		}
		auth, err := d.opts.Credentials(ctx, conn.TLS())
		if err != nil {
			_ = conn.CloseWithError(jsperr.Unauthenticated, "no credentials")
			return nil, fmt.Errorf("client: credentials for %s: %w", kind, err)
		}
		info.Auth = auth
	} else if d.opts.TokenSource != nil {
		auth, err := helloAuth(ctx, d.opts, d.tokens, conn.TLS())
		if err != nil {
			_ = conn.CloseWithError(jsperr.Unauthenticated, "no credentials")
			return nil, fmt.Errorf("client: credentials for %s: %w", kind, err)
		}
		info.Auth = auth
	}
	sess, err := session.Dial(ctx, conn, info, d.opts.Session)
	if err != nil {
		// session.Dial closes the connection on a refused handshake but
		// not on every local failure; a second close is harmless.
		_ = conn.CloseWithError(jsperr.CodeOf(err), "handshake failed")
		return nil, err
	}
	return sess, nil
}
