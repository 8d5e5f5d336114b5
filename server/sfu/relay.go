package sfu

import (
	"time"

	"github.com/jetstreamproto/jsp/reliability/mediapkt"
	"github.com/jetstreamproto/jsp/reliability/nack"
)

// Resend returns a copy of the cached packet seq (the publisher's number)
// of layer, with R set, if a retransmission sent now over a path of round
// trip rtt can still be of use (JSP §13.6). Gateways use it to repair the
// relay of a track to another gateway; subscribers' NACKs go through
// DownTrack.OnNack.
func (t *Track) Resend(layer int, seq mediapkt.Seq, rtt time.Duration) ([]byte, nack.ResendStatus) {
	b, st := t.resend(layer, seq, t.f.cfg.Now(), rtt)
	if st == nack.Resent {
		b[0] |= byte(mediapkt.FlagRetransmission)
	}
	return b, st
}
