package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
)

// Request headers of a delivery (docs/events.md, "Webhooks").
const (
	// HeaderSignature carries "t=<unix seconds>,v1=<hex HMAC-SHA256>".
	HeaderSignature = "Jsp-Signature"
	// HeaderWebhookID names the webhook the delivery is for.
	HeaderWebhookID = "Jsp-Webhook-Id"
	// HeaderEventID is the event's id; receivers de-duplicate by it, as a
	// delivery can arrive more than once.
	HeaderEventID = "Jsp-Event-Id"
	// HeaderEventType is the event's type.
	HeaderEventType = "Jsp-Event-Type"
	// HeaderAttempt counts the attempts of this delivery, from 1.
	HeaderAttempt = "Jsp-Delivery-Attempt"
)

// Signature limits.
const (
	// MaxSignatureHeaderLen caps the header a receiver parses.
	MaxSignatureHeaderLen = 1024
	// MaxSignatures caps the v1 entries of one header (several appear
	// while a secret is being rotated).
	MaxSignatures = 8
	// DefaultTolerance is the accepted distance between the signature's
	// timestamp and the receiver's clock; older requests are replays.
	DefaultTolerance = 5 * time.Minute
)

// ErrSignature is the sentinel every signature error wraps; the errors also
// carry jsperr.WebhookSignatureInvalid.
var ErrSignature = errors.New("webhook: invalid signature")

func sigErr(format string, args ...any) error {
	return fmt.Errorf("%w: %w", ErrSignature, jsperr.Newf(jsperr.WebhookSignatureInvalid, format, args...))
}

// Signature is a parsed Jsp-Signature header.
type Signature struct {
	// Timestamp is when the request was signed, in Unix seconds.
	Timestamp int64
	// V1 are the HMAC-SHA256 values (32 bytes each).
	V1 [][]byte
}

// mac computes HMAC-SHA256(secret, "<t>." || body).
func mac(secret []byte, t int64, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	var buf [20]byte
	h.Write(strconv.AppendInt(buf[:0], t, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Sign returns the Jsp-Signature header value for body at time t:
// "t=<unix seconds>,v1=<lower-case hex of HMAC-SHA256(secret, t + "." + body)>".
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := t.Unix()
	return "t=" + strconv.FormatInt(ts, 10) + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

// AppendSignature is the header for several secrets at once (rotation):
// "t=...,v1=<sig with secret 1>,v1=<sig with secret 2>".
func AppendSignature(secrets [][]byte, t time.Time, body []byte) string {
	ts := t.Unix()
	var b strings.Builder
	b.WriteString("t=")
	b.WriteString(strconv.FormatInt(ts, 10))
	for _, s := range secrets {
		b.WriteString(",v1=")
		b.WriteString(hex.EncodeToString(mac(s, ts, body)))
	}
	return b.String()
}

// ParseSignature parses a Jsp-Signature header: comma-separated key=value
// pairs; exactly one t (decimal Unix seconds, no sign, at most 12 digits),
// one to MaxSignatures v1 (64 lower-case hex digits). Unknown keys are
// skipped so a later scheme (v2) can be added next to v1; a header with no
// v1 fails.
func ParseSignature(h string) (Signature, error) {
	if len(h) > MaxSignatureHeaderLen {
		return Signature{}, sigErr("header of %d bytes, limit %d", len(h), MaxSignatureHeaderLen)
	}
	var (
		sig   Signature
		haveT bool
	)
	for part := range strings.SplitSeq(h, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || k == "" {
			return Signature{}, sigErr("malformed element %q", part)
		}
		switch k {
		case "t":
			if haveT {
				return Signature{}, sigErr("duplicate t")
			}
			if v == "" || len(v) > 12 || strings.TrimLeft(v, "0123456789") != "" {
				return Signature{}, sigErr("bad timestamp %q", v)
			}
			ts, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return Signature{}, sigErr("bad timestamp %q", v)
			}
			sig.Timestamp, haveT = ts, true
		case "v1":
			if len(sig.V1) == MaxSignatures {
				return Signature{}, sigErr("more than %d signatures", MaxSignatures)
			}
			if len(v) != 2*sha256.Size || strings.ToLower(v) != v {
				return Signature{}, sigErr("v1 must be %d lower-case hex digits", 2*sha256.Size)
			}
			b, err := hex.DecodeString(v)
			if err != nil {
				return Signature{}, sigErr("v1 is not hex")
			}
			sig.V1 = append(sig.V1, b)
		}
	}
	if !haveT {
		return Signature{}, sigErr("no timestamp")
	}
	if len(sig.V1) == 0 {
		return Signature{}, sigErr("no v1 signature")
	}
	return sig, nil
}

// Verify checks a request a receiver got: header is the Jsp-Signature
// value, body the raw request body (read it before parsing the JSON), now
// the receiver's clock and tolerance the accepted clock distance (zero
// means DefaultTolerance). It succeeds when the timestamp is within
// tolerance of now and any v1 matches HMAC-SHA256(secret, t + "." + body);
// comparison is in constant time.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	sig, err := ParseSignature(header)
	if err != nil {
		return err
	}
	age := now.Sub(time.Unix(sig.Timestamp, 0))
	if age > tolerance || age < -tolerance {
		return sigErr("timestamp %d is %v from now, tolerance %v", sig.Timestamp, age.Round(time.Second), tolerance)
	}
	want := mac(secret, sig.Timestamp, body)
	for _, v := range sig.V1 {
		if hmac.Equal(v, want) {
			return nil
		}
	}
	return sigErr("no signature matches")
}
