package bwe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Probe packets (JSP §13.12) are media control packets: they start with
// the control marker 0xFF (JSP §13.7), so a media receiver that does not
// know them skips them.
//
//	PROBE (type 0x02), 24 bytes + padding:
//	  0xFF 0x02 | train u16 | index u16 | count u16 | sent µs u64 |
//	  down count u16 | down size u16 | down rate kbit/s u32 | padding
//	PROBE_REPORT (type 0x03), 26 bytes:
//	  0xFF 0x03 | train u16 | received u16 | bytes u32 | spread µs u32 |
//	  echo µs u64 | hold µs u32
//
// All integers are big-endian. A prober sends an "up" train of count
// packets; every packet asks the reflector for a "down" train of the given
// shape (down count 0: none). The reflector answers the up train with one
// PROBE_REPORT (packets and bytes received, the spread between the first
// and last arrival, and the send time of the first packet it received with
// how long it held it, for the RTT: the first packet of a train meets no
// queue the train built itself), then sends the down train, whose train id
// has the top bit set.
const (
	controlMarker     byte = 0xFF
	TypeProbe         byte = 0x02
	TypeProbeReport   byte = 0x03
	ProbeHeaderLen         = 24
	ProbeReportLen         = 26
	downTrainBit           = 0x8000
	maxMicros              = 1<<32 - 1
	probeMinPacketLen      = ProbeHeaderLen
)

// Probe limits (defaults of [ProbeConfig] and [ReflectorConfig]).
const (
	// MaxProbePacketSize caps a probe packet: it must fit one datagram
	// unfragmented (the default media packet room, JSP §13.10).
	MaxProbePacketSize = 1085
	// DefaultProbeCount is the number of packets per train.
	DefaultProbeCount = 60
	// DefaultProbeSize is the size of each probe packet.
	DefaultProbeSize = 1000
	// DefaultProbeRate paces a train; a train faster than the path
	// measures the path's rate by the arrivals' spread.
	DefaultProbeRate = 20 * Mbps
	// DefaultProbeTimeout bounds a whole test.
	DefaultProbeTimeout = 5 * time.Second
	// DefaultQuietGap ends a train at its receiver when no packet of it
	// arrived for this long (the last ones were lost).
	DefaultQuietGap = 200 * time.Millisecond
	// DefaultMaxTrainPackets caps a train the reflector sends or measures.
	DefaultMaxTrainPackets = 500
	// DefaultMaxDownRate caps the pace of a down train a reflector sends.
	DefaultMaxDownRate = 50 * Mbps
	// DefaultMinTrainInterval is the least time between two down trains
	// of one reflector: a probe must not turn the server into a traffic
	// generator.
	DefaultMinTrainInterval = time.Second
)

// Errors of the probe codec and state machines.
var (
	// ErrProbeMalformed: a probe packet that does not parse.
	ErrProbeMalformed = errors.New("bwe: malformed probe packet")
	// ErrNotProbe: a control packet of another type, or not a control
	// packet.
	ErrNotProbe = errors.New("bwe: not a probe packet")
	// ErrProbeTimeout: the test did not finish in time.
	ErrProbeTimeout = errors.New("bwe: probe timed out")
)

// TrainShape describes a train.
type TrainShape struct {
	Count int     `json:"count"`    // packets, 1..65535
	Size  int     `json:"size"`     // bytes per packet, ProbeHeaderLen..MaxProbePacketSize
	Rate  Bitrate `json:"rate_bps"` // pacing rate
}

// Probe is one decoded PROBE packet.
type Probe struct {
	Train uint16 `json:"train"`
	Index uint16 `json:"index"`
	Count uint16 `json:"count"`
	// Sent is the send time on the prober's clock, in microseconds since
	// its start.
	Sent uint64 `json:"sent_us"`
	// Down asks for a down train (Count 0: none). Rate is carried in
	// kbit/s.
	Down TrainShape `json:"down"`
	// Size is the whole packet's length, padding included.
	Size int `json:"size"`
}

// AppendProbe encodes p, padded to p.Size bytes, and appends it to b.
func AppendProbe(b []byte, p Probe) ([]byte, error) {
	if p.Size < ProbeHeaderLen || p.Size > MaxProbePacketSize || p.Index >= p.Count ||
		p.Down.Count < 0 || p.Down.Count > 0xFFFF || p.Down.Size < 0 || p.Down.Size > 0xFFFF ||
		p.Down.Rate < 0 || p.Down.Rate/Kbps > 0xFFFFFFFF {
		return b, fmt.Errorf("bwe: probe %+v: %w", p, ErrProbeMalformed)
	}
	b = append(b, controlMarker, TypeProbe)
	b = binary.BigEndian.AppendUint16(b, p.Train)
	b = binary.BigEndian.AppendUint16(b, p.Index)
	b = binary.BigEndian.AppendUint16(b, p.Count)
	b = binary.BigEndian.AppendUint64(b, p.Sent)
	b = binary.BigEndian.AppendUint16(b, uint16(p.Down.Count))
	b = binary.BigEndian.AppendUint16(b, uint16(p.Down.Size))
	b = binary.BigEndian.AppendUint32(b, uint32(p.Down.Rate/Kbps))
	return append(b, make([]byte, p.Size-ProbeHeaderLen)...), nil
}

// ParseProbe decodes a PROBE packet.
func ParseProbe(b []byte) (Probe, error) {
	var p Probe
	if len(b) < 2 || b[0] != controlMarker || b[1] != TypeProbe {
		return p, ErrNotProbe
	}
	if len(b) < ProbeHeaderLen || len(b) > MaxProbePacketSize {
		return p, fmt.Errorf("bwe: probe of %d bytes: %w", len(b), ErrProbeMalformed)
	}
	p.Train = binary.BigEndian.Uint16(b[2:])
	p.Index = binary.BigEndian.Uint16(b[4:])
	p.Count = binary.BigEndian.Uint16(b[6:])
	p.Sent = binary.BigEndian.Uint64(b[8:])
	p.Down.Count = int(binary.BigEndian.Uint16(b[16:]))
	p.Down.Size = int(binary.BigEndian.Uint16(b[18:]))
	p.Down.Rate = Bitrate(binary.BigEndian.Uint32(b[20:])) * Kbps
	p.Size = len(b)
	if p.Index >= p.Count {
		return p, fmt.Errorf("bwe: probe index %d of %d: %w", p.Index, p.Count, ErrProbeMalformed)
	}
	return p, nil
}

// ProbeReport is one decoded PROBE_REPORT.
type ProbeReport struct {
	Train    uint16 `json:"train"`
	Received uint16 `json:"received"`
	Bytes    uint32 `json:"bytes"`
	// Spread is the time from the first to the last arrival, µs.
	Spread uint32 `json:"spread_us"`
	// Echo is the Sent field of the first packet received; Hold is how
	// long after its arrival the report left, µs.
	Echo uint64 `json:"echo_us"`
	Hold uint32 `json:"hold_us"`
}

// Append encodes r and appends it to b.
func (r ProbeReport) Append(b []byte) []byte {
	b = append(b, controlMarker, TypeProbeReport)
	b = binary.BigEndian.AppendUint16(b, r.Train)
	b = binary.BigEndian.AppendUint16(b, r.Received)
	b = binary.BigEndian.AppendUint32(b, r.Bytes)
	b = binary.BigEndian.AppendUint32(b, r.Spread)
	b = binary.BigEndian.AppendUint64(b, r.Echo)
	return binary.BigEndian.AppendUint32(b, r.Hold)
}

// ParseProbeReport decodes a PROBE_REPORT. Trailing bytes are malformed:
// the report has one encoding.
func ParseProbeReport(b []byte) (ProbeReport, error) {
	var r ProbeReport
	if len(b) < 2 || b[0] != controlMarker || b[1] != TypeProbeReport {
		return r, ErrNotProbe
	}
	if len(b) != ProbeReportLen {
		return r, fmt.Errorf("bwe: probe report of %d bytes: %w", len(b), ErrProbeMalformed)
	}
	r.Train = binary.BigEndian.Uint16(b[2:])
	r.Received = binary.BigEndian.Uint16(b[4:])
	r.Bytes = binary.BigEndian.Uint32(b[6:])
	r.Spread = binary.BigEndian.Uint32(b[10:])
	r.Echo = binary.BigEndian.Uint64(b[14:])
	r.Hold = binary.BigEndian.Uint32(b[22:])
	return r, nil
}

func micros(d time.Duration) uint64 {
	if d < 0 {
		return 0
	}
	return uint64(d / time.Microsecond)
}

func clampMicros(d time.Duration) uint32 { return uint32(min(micros(d), maxMicros)) }

// trainMeter measures the arrivals of one train.
type trainMeter struct {
	train       uint16
	count       int
	received    int
	bytes       int
	firstSize   int
	first, last time.Time
	firstSent   uint64
	seen        []bool
	active      bool
}

func (m *trainMeter) start(train uint16, count int) {
	*m = trainMeter{train: train, count: count, seen: make([]bool, count), active: true}
}

// add counts one packet; duplicates are ignored.
func (m *trainMeter) add(p Probe, now time.Time) {
	if int(p.Index) >= len(m.seen) || m.seen[p.Index] {
		return
	}
	m.seen[p.Index] = true
	if m.received == 0 {
		m.first, m.firstSize, m.firstSent = now, p.Size, p.Sent
	}
	m.received++
	m.bytes += p.Size
	m.last = now
}

// done reports whether the train is over: all packets in, or quiet.
func (m *trainMeter) done(now time.Time, quiet time.Duration) bool {
	return m.received == m.count || (m.received > 0 && now.Sub(m.last) >= quiet)
}

// rate is the throughput the train's dispersion shows: the bytes after the
// first packet over the time from its arrival to the last one.
func (m *trainMeter) rate() Bitrate {
	if m.received < 2 {
		return 0
	}
	return bytesOver(int64(m.bytes-m.firstSize), m.last.Sub(m.first))
}

func (m *trainMeter) report(now time.Time) ProbeReport {
	return ProbeReport{Train: m.train, Received: uint16(m.received), Bytes: uint32(m.bytes),
		Spread: clampMicros(m.last.Sub(m.first)), Echo: m.firstSent, Hold: clampMicros(now.Sub(m.first))}
}

// pacer emits the packets of a train at its rate.
type pacer struct {
	shape TrainShape
	train uint16
	next  int
	at    time.Time
	down  TrainShape
}

// due returns the probes due by now and the time of the next one.
func (p *pacer) due(now time.Time, epoch time.Time) ([]Probe, time.Time) {
	var out []Probe
	for p.next < p.shape.Count && !p.at.After(now) {
		out = append(out, Probe{Train: p.train, Index: uint16(p.next), Count: uint16(p.shape.Count),
			Sent: micros(now.Sub(epoch)), Down: p.down, Size: p.shape.Size})
		p.next++
		p.at = p.at.Add(time.Duration(float64(p.shape.Size*8) / float64(p.shape.Rate) * float64(time.Second)))
	}
	if p.next >= p.shape.Count {
		return out, time.Time{}
	}
	return out, p.at
}
