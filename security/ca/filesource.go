package ca

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// DefaultFileCheckInterval is how often a FileSource looks at its files'
// modification times.
const DefaultFileCheckInterval = 5 * time.Second

// FileSource is a CertificateSource over a PEM certificate and key file
// that something else renews (jsp ca issue run by a timer on the host
// that keeps the CA key, or a secrets agent): at a handshake at least
// CheckInterval after the last look it reloads the files if either
// changed. Established connections keep running; the next handshake
// presents the new certificate. A pair that fails to load is logged by
// the caller through LastError and the previous certificate stays in use
// until it expires, so a half-written pair never takes a service down.
// No goroutine: reloading happens on the handshake path.
type FileSource struct {
	certPath, keyPath string
	interval          time.Duration
	now               func() time.Time

	mu        sync.Mutex
	cur       *tls.Certificate // guarded by mu
	certMod   time.Time        // guarded by mu
	keyMod    time.Time        // guarded by mu
	lastCheck time.Time        // guarded by mu
	lastErr   error            // guarded by mu
}

// NewFileSource loads the pair once (failing if it cannot) and returns a
// source that reloads it when it changes. interval 0 means
// DefaultFileCheckInterval; now nil means time.Now.
func NewFileSource(certPath, keyPath string, interval time.Duration, now func() time.Time) (*FileSource, error) {
	if interval < 0 {
		return nil, errors.New("ca: file source: negative check interval")
	}
	if interval == 0 {
		interval = DefaultFileCheckInterval
	}
	if now == nil {
		now = time.Now
	}
	s := &FileSource{certPath: certPath, keyPath: keyPath, interval: interval, now: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reloadLocked(); err != nil {
		return nil, err
	}
	return s, nil
}

func modTime(path string) (time.Time, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}

// reloadLocked loads the pair and records the files' times.
func (s *FileSource) reloadLocked() error {
	s.lastCheck = s.now()
	cm, err := modTime(s.certPath)
	if err != nil {
		return fmt.Errorf("ca: file source: %w", err)
	}
	km, err := modTime(s.keyPath)
	if err != nil {
		return fmt.Errorf("ca: file source: %w", err)
	}
	pair, err := tls.LoadX509KeyPair(s.certPath, s.keyPath)
	if err != nil {
		return fmt.Errorf("ca: file source %s: %w", s.certPath, err)
	}
	if _, err := IdentityOf(pair.Leaf); err != nil {
		return fmt.Errorf("ca: file source %s: %w", s.certPath, err)
	}
	s.cur, s.certMod, s.keyMod = &pair, cm, km
	return nil
}

// Certificate implements CertificateSource.
func (s *FileSource) Certificate() (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.now().Sub(s.lastCheck) >= s.interval {
		s.lastCheck = s.now()
		cm, cerr := modTime(s.certPath)
		km, kerr := modTime(s.keyPath)
		switch {
		case cerr != nil || kerr != nil:
			s.lastErr = fmt.Errorf("ca: file source: %w", errors.Join(cerr, kerr))
		case !cm.Equal(s.certMod) || !km.Equal(s.keyMod):
			s.lastErr = s.reloadLocked()
		}
	}
	return s.cur, nil
}

// LastError returns the error of the last failed reload, nil after a
// successful one.
func (s *FileSource) LastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// Identity returns the identity of the certificate in use.
func (s *FileSource) Identity() Identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, _ := IdentityOf(s.cur.Leaf) // checked when loaded
	return id
}
