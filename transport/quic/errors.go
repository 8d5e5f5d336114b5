package quic

import (
	"context"
	"errors"
	"fmt"
	"io"

	quicgo "github.com/quic-go/quic-go"

	"github.com/jetstreamproto/jsp/jsperr"
)

// ErrDatagramsDisabled is returned by the datagram methods when either side
// turned RFC 9221 datagrams off.
var ErrDatagramsDisabled = errors.New("quic: datagrams not enabled on both sides")

// QUIC reserves transport error codes 0x0100-0x01ff for TLS alerts
// (RFC 9001 §4.8).
const (
	cryptoErrorFirst quicgo.TransportErrorCode = 0x100
	cryptoErrorLast  quicgo.TransportErrorCode = 0x1ff
)

// connError maps an error that ended a connection to a *jsperr.Error (JSP
// §10). The QUIC error stays in the chain, so errors.Is(err, net.ErrClosed)
// and errors.As to a quic-go type keep working.
//
//   - application close: the JSP code and reason the closer sent; Remote
//     tells which side closed;
//   - idle timeout: IDLE_TIMEOUT; handshake timeout: HANDSHAKE_TIMEOUT;
//   - TLS alerts (wrong ALPN, bad certificate, TLS below 1.3):
//     TLS_REQUIRED;
//   - QUIC flow-control, stream-limit and protocol-violation errors: the
//     JSP code of the same meaning;
//   - anything else (stateless reset, socket closed, transport closed):
//     TRANSPORT_CLOSED.
func connError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*jsperr.Error](err); ok {
		return err
	}
	if ae, ok := errors.AsType[*quicgo.ApplicationError](err); ok {
		e := jsperr.Wrap(jsperr.Code(ae.ErrorCode), err)
		e.Reason = ae.ErrorMessage
		e.Remote = ae.Remote
		return e
	}
	if _, ok := errors.AsType[*quicgo.IdleTimeoutError](err); ok {
		return jsperr.Wrap(jsperr.IdleTimeout, err)
	}
	if _, ok := errors.AsType[*quicgo.HandshakeTimeoutError](err); ok {
		return jsperr.Wrap(jsperr.HandshakeTimeout, err)
	}
	if te, ok := errors.AsType[*quicgo.TransportError](err); ok {
		code := jsperr.TransportClosed
		switch {
		case te.ErrorCode >= cryptoErrorFirst && te.ErrorCode <= cryptoErrorLast:
			code = jsperr.TlsRequired
		case te.ErrorCode == quicgo.FlowControlError:
			code = jsperr.FlowControlError
		case te.ErrorCode == quicgo.StreamLimitError:
			code = jsperr.StreamLimit
		case te.ErrorCode == quicgo.ProtocolViolation:
			code = jsperr.ProtocolViolation
		}
		e := jsperr.Wrap(code, err)
		e.Remote = te.Remote
		return e
	}
	return jsperr.Wrap(jsperr.TransportClosed, err)
}

// streamError maps an error from a stream operation. A stream reset
// becomes a STREAM_RESET *jsperr.Error (JSP §10) that wraps a second
// *jsperr.Error with the code the resetting side gave, so that both
// jsperr.CodeOf(err) == STREAM_RESET and errors.Is(err, jsperr.New(code, ""))
// hold, as on every transport; the *quicgo.StreamError stays in the chain
// below them. io.EOF and deadline errors pass unchanged; connection errors
// map as in connError.
func streamError(err error) error {
	if err == nil {
		return nil
	}
	se, ok := errors.AsType[*quicgo.StreamError](err)
	if !ok {
		if isPassThrough(err) {
			return err
		}
		return connError(err)
	}
	app := jsperr.Wrap(jsperr.Code(se.ErrorCode), err)
	app.Remote = se.Remote
	if se.Remote {
		app.Reason = fmt.Sprintf("stream %d reset by peer", se.StreamID)
	} else {
		app.Reason = fmt.Sprintf("stream %d reset locally", se.StreamID)
	}
	e := jsperr.Wrap(jsperr.StreamReset, app)
	e.Remote = se.Remote
	return e
}

// ResetCode returns the error code a stream was reset with, when err (from
// a stream's Read or Write) reports a stream reset.
func ResetCode(err error) (jsperr.Code, bool) {
	if se, ok := errors.AsType[*quicgo.StreamError](err); ok {
		return jsperr.Code(se.ErrorCode), true
	}
	return 0, false
}

// isPassThrough reports errors a stream returns unchanged: end of stream,
// deadlines, and a local Close followed by Write.
func isPassThrough(err error) bool {
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		// A stream deadline; connection timeouts were handled as QUIC
		// error types before this is reached.
		_, idle := errors.AsType[*quicgo.IdleTimeoutError](err)
		_, hs := errors.AsType[*quicgo.HandshakeTimeoutError](err)
		return !idle && !hs
	}
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.EOF) || errors.Is(err, quicgo.ErrStreamClosed)
}
