package media

import (
	"fmt"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/wire"
)

// Media control packets (JSP §13.7). A datagram on a media flow is either a
// media packet (reliability/mediapkt) or a control packet; control packets
// travel against the flow's direction, from its receiver to its sender:
//
//	+------+------+---------------------------+
//	| 0xFF | type | body (per type)           |
//	+------+------+---------------------------+
//
// The marker 0xFF can never start a media packet: it sets the reserved flag
// bits, and it sets F together with K, E, L and R, which JSP §13.1 forbids
// for good. So one flow id names a flow in each direction and its feedback
// without any extra byte on media packets.
const (
	// ControlMarker is the first byte of every media control packet.
	ControlMarker byte = 0xFF
	// ControlReceiverReport is the type of a receiver report.
	ControlReceiverReport byte = 0x01
)

// Limits of a receiver report (JSP §13.7).
const (
	// MaxReportTotal caps Report.Total: a report covers at most 2^32-1
	// sequence numbers, far more than any reporting interval sees.
	MaxReportTotal = 1<<32 - 1
	// MaxReportJitter caps Report.Jitter: one minute.
	MaxReportJitter = time.Minute
	// maxReportFields caps the entries of a report body, unknown keys
	// included, so that a hostile body cannot make the decoder iterate
	// long.
	maxReportFields = 16
)

// Report is a receiver report (JSP §13.7): what the receiver of a flow saw
// of the path during one reporting interval, before any repair. The sender
// feeds it to its FEC policy. CBOR map keys:
//
//	1 total  uint   required, 0..2^32-1: source sequence numbers the newest
//	                received number advanced by during the interval
//	2 lost   uint   required, <= total: of those, how many had no original
//	                transmission arrive (retransmissions and FEC rebuilds
//	                do not count as arrivals)
//	3 jitter uint   interarrival jitter in microseconds (RFC 3550 §6.4.1);
//	                absent = 0, at most 60,000,000
type Report struct {
	Total  uint64
	Lost   uint64
	Jitter time.Duration
}

// Errors of [ParseReport]. Each carries a JSP code; a sender drops the
// offending packet.
var (
	// ErrNotControl: the packet does not start with ControlMarker.
	ErrNotControl = jsperr.New(jsperr.MalformedFrame, "media: not a control packet")
	// ErrUnknownControl: a control type this version does not know. JSP
	// §8.3: a receiver skips it, so new types can be added.
	ErrUnknownControl = jsperr.New(jsperr.MalformedFrame, "media: unknown control packet type")
	// ErrBadReport: a report field is out of range (lost above total, a
	// total or jitter over its cap).
	ErrBadReport = jsperr.New(jsperr.MalformedFrame, "media: receiver report field out of range")
)

func jitterMicros(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	return uint64(d / time.Microsecond)
}

// Validate checks r against the ranges of JSP §13.7.
func (r *Report) Validate() error {
	if r.Total > MaxReportTotal || r.Lost > r.Total || r.Jitter < 0 || r.Jitter > MaxReportJitter {
		return ErrBadReport
	}
	return nil
}

// Len returns the length of the whole control packet Append produces.
func (r *Report) Len() int {
	n := 2 + 1 + 1 + cborUintLen(r.Total) + 1 + cborUintLen(r.Lost)
	if j := jitterMicros(r.Jitter); j != 0 {
		n += 1 + cborUintLen(j)
	}
	return n
}

// Append appends r as a whole control packet (marker, type, body) to b. The
// body is deterministic CBOR (JSP §6): keys in order, absent jitter when it
// is zero.
func (r *Report) Append(b []byte) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return b, fmt.Errorf("media: encoding report %+v: %w", *r, err)
	}
	j := jitterMicros(r.Jitter)
	n := 2
	if j != 0 {
		n++
	}
	b = append(b, ControlMarker, ControlReceiverReport)
	b = wire.AppendCBORMapHeader(b, n)
	b = wire.AppendCBORUint(b, 1)
	b = wire.AppendCBORUint(b, r.Total)
	b = wire.AppendCBORUint(b, 2)
	b = wire.AppendCBORUint(b, r.Lost)
	if j != 0 {
		b = wire.AppendCBORUint(b, 3)
		b = wire.AppendCBORUint(b, j)
	}
	return b, nil
}

// ParseReport decodes a whole receiver-report control packet. The body must
// fill the packet: a datagram has no room for anything after it. Unknown
// keys are skipped (JSP §8.3) and so not re-encoded.
func ParseReport(b []byte) (Report, error) {
	var r Report
	if len(b) < 1 || b[0] != ControlMarker {
		return r, ErrNotControl
	}
	if len(b) < 2 {
		return r, wire.ErrTruncated
	}
	if b[1] != ControlReceiverReport {
		return r, ErrUnknownControl
	}
	d := wire.NewCBORDecoder(b[2:])
	m, err := d.Map(maxReportFields)
	if err != nil {
		return r, fmt.Errorf("media: report body: %w", err)
	}
	for {
		key, ok, err := m.Next()
		if err != nil {
			return Report{}, fmt.Errorf("media: report body: %w", err)
		}
		if !ok {
			break
		}
		switch key {
		case 1:
			r.Total, err = d.Uint()
		case 2:
			r.Lost, err = d.Uint()
		case 3:
			var us uint64
			us, err = d.Uint()
			// Check before converting: a huge count of microseconds
			// would overflow time.Duration.
			if err == nil && us > uint64(MaxReportJitter/time.Microsecond) {
				return Report{}, ErrBadReport
			}
			r.Jitter = time.Duration(us) * time.Microsecond
		default:
			err = d.Skip() // JSP §8.3
		}
		if err != nil {
			return Report{}, fmt.Errorf("media: report field %d: %w", key, err)
		}
	}
	if !m.Has(1) || !m.Has(2) {
		return Report{}, wire.ErrMissingField
	}
	if d.Remaining() != 0 {
		return Report{}, wire.ErrTrailingBytes
	}
	if err := r.Validate(); err != nil {
		return Report{}, err
	}
	return r, nil
}

// IsControl reports whether a media-flow datagram is a control packet
// rather than a media packet.
func IsControl(b []byte) bool { return len(b) > 0 && b[0] == ControlMarker }

// cborUintLen is the encoded length of a CBOR unsigned integer (RFC 8949
// §4.2.1, shortest form).
func cborUintLen(v uint64) int {
	switch {
	case v < 24:
		return 1
	case v <= 0xff:
		return 2
	case v <= 0xffff:
		return 3
	case v <= 0xffffffff:
		return 5
	default:
		return 9
	}
}
