// Package servicetest provides an in-memory application stream for testing
// services without a session or transport, as net/http/httptest does for
// handlers.
package servicetest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
)

// Stream is one end of an in-memory bidirectional stream. Close ends the
// sending side (the peer reads io.EOF); CancelRead and CancelWrite abandon a
// direction with a code that the peer sees as a STREAM_RESET error, as a
// real transport reports it. Deadlines are honoured for Read and Write.
type Stream struct {
	label string
	meta  map[string]string
	r     *io.PipeReader // what this end reads
	w     *io.PipeWriter // what this end writes
	// The far halves of the same pipes: closing them with an error is how
	// a deadline makes a blocked Read or Write return that error.
	rSrc *io.PipeWriter
	wDst *io.PipeReader

	mu     sync.Mutex
	timers [2]*time.Timer // guarded by mu: read, write deadline
}

// Pipe returns the two ends of a stream. The server end carries label and
// meta, as if the client had opened it with STREAM_OPEN.
func Pipe(label string, meta map[string]string) (server, client *Stream) {
	c2sR, c2sW := io.Pipe()
	s2cR, s2cW := io.Pipe()
	server = &Stream{label: label, meta: meta, r: c2sR, w: s2cW, rSrc: c2sW, wDst: s2cR}
	client = &Stream{label: label, meta: meta, r: s2cR, w: c2sW, rSrc: s2cW, wDst: c2sR}
	return server, client
}

// Read implements io.Reader.
func (s *Stream) Read(p []byte) (int, error) { return s.r.Read(p) }

// Write implements io.Writer.
func (s *Stream) Write(p []byte) (int, error) { return s.w.Write(p) }

// Close ends the sending side; the peer reads io.EOF after the data.
func (s *Stream) Close() error { return s.w.Close() }

// Label returns the stream's label.
func (s *Stream) Label() string { return s.label }

// Metadata returns the stream's metadata.
func (s *Stream) Metadata() map[string]string { return s.meta }

// ResetError is what the peer's Read or Write returns after a cancel.
func ResetError(code jsperr.Code) error {
	return &jsperr.Error{Code: jsperr.StreamReset, Reason: fmt.Sprintf("stream reset by peer with %s", code), Remote: true}
}

// CancelRead abandons the receiving side: the peer's writes fail.
func (s *Stream) CancelRead(code jsperr.Code) { _ = s.r.CloseWithError(ResetError(code)) }

// CancelWrite abandons the sending side: the peer's reads fail.
func (s *Stream) CancelWrite(code jsperr.Code) { _ = s.w.CloseWithError(ResetError(code)) }

// ErrDeadline is returned by Read and Write after their deadline passed; it
// matches os.ErrDeadlineExceeded under errors.Is. A passed deadline breaks
// that direction of the pipe for good.
var ErrDeadline = fmt.Errorf("servicetest: %w", os.ErrDeadlineExceeded)

func (s *Stream) setDeadline(i int, t time.Time, fire func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timers[i] != nil {
		s.timers[i].Stop()
		s.timers[i] = nil
	}
	if t.IsZero() {
		return
	}
	s.timers[i] = time.AfterFunc(time.Until(t), fire)
}

// SetReadDeadline sets the read deadline.
func (s *Stream) SetReadDeadline(t time.Time) error {
	s.setDeadline(0, t, func() { _ = s.rSrc.CloseWithError(ErrDeadline) })
	return nil
}

// SetWriteDeadline sets the write deadline.
func (s *Stream) SetWriteDeadline(t time.Time) error {
	s.setDeadline(1, t, func() { _ = s.wDst.CloseWithError(ErrDeadline) })
	return nil
}

// Stop cancels pending deadline timers; tests call it so that no timer
// outlives them.
func (s *Stream) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, t := range s.timers {
		if t != nil {
			t.Stop()
			s.timers[i] = nil
		}
	}
}

// IsReset reports whether err is a stream reset with the given code in its
// reason, as produced by CancelRead/CancelWrite.
func IsReset(err error, code jsperr.Code) bool {
	var je *jsperr.Error
	return errors.As(err, &je) && je.Code == jsperr.StreamReset && je.Reason == ResetError(code).(*jsperr.Error).Reason
}
