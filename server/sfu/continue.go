package sfu

import "github.com/jetstreamproto/jsp/reliability/mediapkt"

// Continuation returns the sequence number and timestamp at which a new
// DownTrack for the same subscriber continues this one's spaces (its
// SubscriberConfig.InitialSeq and InitialTimestamp): the subscriber's
// receiver then sees neither a gap nor a jump back when its subscription
// moves to another Track. ok is false when nothing was forwarded yet.
func (d *DownTrack) Continuation() (seq mediapkt.Seq, ts uint32, ok bool) {
	now := d.t.f.cfg.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.rw.Next(now)
}
