package bench

// Pair is a JSP stack and the raw stack it runs on, compared side by side.
type Pair struct {
	// Transport names the pair in benchmark names: "quic" or "tcp".
	Transport string
	JSP, Raw  Stack
}

// Pairs returns every pair under test: JSP over QUIC against quic-go, and
// JSP over TLS on TCP (link layer) against crypto/tls on TCP.
func Pairs() []Pair {
	return []Pair{
		{Transport: "quic", JSP: JSPQUIC(), Raw: RawQUIC()},
	}
}
