package transport

// ArrivalNotifier is implemented by connections that report arriving peer
// streams and datagrams by callback (transport/mux does), so that a
// consumer need not keep one goroutine blocked in AcceptStream and another
// in ReceiveDatagram while nothing comes: an idle connection then costs no
// waiting goroutine (decision D27). Connections without it are served by
// the blocking calls.
type ArrivalNotifier interface {
	// NotifyArrivals registers f, replacing any earlier callback. f runs
	// whenever a peer stream or datagram becomes ready to take, and once
	// at registration if one already is. It runs on the connection's own
	// goroutine with its lock held: it must not block and must not call
	// the connection; it should only schedule the work.
	NotifyArrivals(f func())
	// TryAcceptStream returns the next peer stream if one is ready.
	TryAcceptStream() (Stream, bool)
	// TryReceiveDatagram returns the next datagram if one is ready.
	TryReceiveDatagram() ([]byte, bool)
}

// ReadNotifier is implemented by streams that report readable input by
// callback, so that a reader need not block in Read while the stream is
// quiet (decision D27).
type ReadNotifier interface {
	// NotifyReadable registers f, replacing any earlier callback. f runs
	// whenever data, the end of the stream, a reset or the connection's
	// close arrives, and once at registration if Readable already holds.
	// The same rules as for ArrivalNotifier's callback apply.
	NotifyReadable(f func())
	// Readable reports whether a Read would return without waiting.
	Readable() bool
}
