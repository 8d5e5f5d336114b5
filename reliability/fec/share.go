package fec

// ParityShare returns how many of the M parity packets of group g a sender
// sends when the group was opened with shape full: all of a full group's
// (g.K >= full.K), and of a group closed early (at the end of a burst, by a
// group delay, or before a packet too long to protect) its share at the
// full shape's rate, ceil(g.K * full.M / full.K), at least one, at most
// g.M (JSP §13.4).
//
// Why: the encoder gives a partial group the full M, so that any group
// decodes against any subset of its parity. Sent whole, a flow whose
// groups close after one or two packets (20 ms audio, a slow video flow
// under a group delay) would carry several times the overhead the policy
// chose, on a path that is lossy because it is loaded. Sending fewer is
// safe: the receiver decodes from whichever parity arrives, as if the rest
// were lost.
func ParityShare(g Group, full Params) int {
	if !full.Enabled() || full.K < 1 || g.K >= full.K {
		return g.M
	}
	return min(g.M, max(1, (g.K*full.M+full.K-1)/full.K))
}

// InShare reports whether p is among the parity packets of its group that
// are sent: its index is below [ParityShare] of its group and shape.
func (p Parity) InShare() bool { return p.Index < ParityShare(p.Group, p.Shape) }
