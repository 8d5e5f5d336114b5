package simulcast

import (
	"time"

	"github.com/jetstreamproto/jsp/reliability/mediapkt"
)

// Next returns the outgoing sequence number and timestamp that continue
// the rewriter's spaces at now, as a layer switch does: the number after
// the newest one sent, and the newest timestamp advanced by the wall-clock
// time since its packet, at least one tick. A new Rewriter started there
// (RewriterConfig.InitialSeq, InitialTimestamp) takes over the same
// subscriber without a gap or a jump back. ok is false before the first
// packet: there is nothing to continue.
func (r *Rewriter) Next(now time.Time) (seq mediapkt.Seq, ts uint32, ok bool) {
	if !r.started {
		return 0, 0, false
	}
	adv := max(uint32(max(now.Sub(r.lastAt), 0).Seconds()*float64(r.cfg.ClockRate)), 1)
	return r.lastOut + 1, r.lastTS + adv, true
}
