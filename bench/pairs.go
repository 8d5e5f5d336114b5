package bench

import "github.com/jetstreamproto/jsp/session"

// Pair is a JSP stack and the raw stack it runs on, compared side by side.
type Pair struct {
	// Transport names the pair in benchmark names: "quic" or "tcp".
	Transport string
	JSP, Raw  Stack
	// Variants are JSP stacks with non-default settings, named
	// "jsp-<what>", for diagnosing where JSP's cost lies. The benchmarks
	// run them only when asked to.
	Variants []Stack
}

// Pairs returns every pair under test: JSP over QUIC against quic-go, and
// JSP over TLS on TCP (link layer) against crypto/tls on TCP.
func Pairs() []Pair {
	return []Pair{
		{Transport: "quic", JSP: JSPQUIC(), Raw: RawQUIC(), Variants: []Stack{
			variant("nozstd", JSP(QUICListener, QUICDialer, session.Config{DisableCompression: true})),
		}},
		{Transport: "tcp", JSP: JSPTCP(), Raw: RawTLS(), Variants: []Stack{
			variant("nozstd", JSP(TCPListener, TCPDialer, session.Config{DisableCompression: true})),
		}},
	}
}

func variant(name string, st Stack) Stack {
	st.Name += "-" + name
	return st
}
