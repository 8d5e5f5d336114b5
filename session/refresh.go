package session

import (
	"fmt"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/wire"
)

// RefreshService is the service route of the token refresh command (JSP
// §5.9.1): a COMMAND to it carries a new token for the session's identity,
// and its REPLY the identity's new expiry. The session keeps running.
const RefreshService = "auth.refresh"

// MaxRefreshToken caps the token text of a refresh request; it matches
// the cap on a token in HELLO auth.
const MaxRefreshToken = 4096

// Keys of the refresh request and reply maps (JSP §5.9.1).
const (
	refreshKeyToken   = 1 // request: tstr, the new token
	refreshKeyExpires = 1 // reply: uint, Unix milliseconds; 0 = never
)

// AppendRefreshRequest appends the COMMAND body of a refresh:
// {1: token}.
func AppendRefreshRequest(b []byte, token string) []byte {
	b = wire.AppendCBORMapHeader(b, 1)
	b = wire.AppendCBORUint(b, refreshKeyToken)
	return wire.AppendCBORText(b, token)
}

// ParseRefreshRequest decodes a refresh COMMAND body. Unknown keys are
// skipped (JSP §8.3); a missing or oversized token is MALFORMED_FRAME.
func ParseRefreshRequest(body []byte) (string, error) {
	d := wire.NewCBORDecoder(body)
	m, err := d.Map(8)
	if err != nil {
		return "", jsperr.Wrap(jsperr.MalformedFrame, fmt.Errorf("refresh request: %w", err))
	}
	var tok string
	for {
		k, ok, err := m.Next()
		if err != nil {
			return "", jsperr.Wrap(jsperr.MalformedFrame, fmt.Errorf("refresh request: %w", err))
		}
		if !ok {
			break
		}
		if k == refreshKeyToken {
			tok, err = d.Text(MaxRefreshToken)
		} else {
			err = d.Skip()
		}
		if err != nil {
			return "", jsperr.Wrap(jsperr.MalformedFrame, fmt.Errorf("refresh request key %d: %w", k, err))
		}
	}
	if d.Remaining() != 0 {
		return "", jsperr.Newf(jsperr.MalformedFrame, "refresh request: %d bytes after the map", d.Remaining())
	}
	if tok == "" {
		return "", jsperr.New(jsperr.MalformedFrame, "refresh request without a token")
	}
	return tok, nil
}

// AppendRefreshReply appends the REPLY body of a refresh: {1: expiry in
// Unix milliseconds}, 0 for a credential that does not expire.
func AppendRefreshReply(b []byte, expires time.Time) []byte {
	var ms uint64
	if !expires.IsZero() && expires.UnixMilli() > 0 {
		ms = uint64(expires.UnixMilli())
	}
	b = wire.AppendCBORMapHeader(b, 1)
	b = wire.AppendCBORUint(b, refreshKeyExpires)
	return wire.AppendCBORUint(b, ms)
}

// ParseRefreshReply decodes a refresh REPLY body into the new expiry
// (zero: never).
func ParseRefreshReply(body []byte) (time.Time, error) {
	d := wire.NewCBORDecoder(body)
	m, err := d.Map(8)
	if err != nil {
		return time.Time{}, jsperr.Wrap(jsperr.MalformedFrame, fmt.Errorf("refresh reply: %w", err))
	}
	var ms uint64
	for {
		k, ok, err := m.Next()
		if err != nil {
			return time.Time{}, jsperr.Wrap(jsperr.MalformedFrame, fmt.Errorf("refresh reply: %w", err))
		}
		if !ok {
			break
		}
		if k == refreshKeyExpires {
			ms, err = d.Uint()
		} else {
			err = d.Skip()
		}
		if err != nil {
			return time.Time{}, jsperr.Wrap(jsperr.MalformedFrame, fmt.Errorf("refresh reply key %d: %w", k, err))
		}
	}
	if d.Remaining() != 0 {
		return time.Time{}, jsperr.Newf(jsperr.MalformedFrame, "refresh reply: %d bytes after the map", d.Remaining())
	}
	if !m.Has(refreshKeyExpires) {
		return time.Time{}, jsperr.New(jsperr.MalformedFrame, "refresh reply without an expiry")
	}
	if ms == 0 {
		return time.Time{}, nil
	}
	if ms > 1<<53 {
		return time.Time{}, jsperr.Newf(jsperr.MalformedFrame, "refresh reply expiry %d ms out of range", ms)
	}
	return time.UnixMilli(int64(ms)).UTC(), nil
}
