package bench

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
)

// ChunkSize is the size of each Write and Read call in the bulk workload,
// the same for every stack: what an application copying a file would use,
// and large enough that per-call overhead does not dominate.
const ChunkSize = 64 << 10

// ackLen is the size of the bulk acknowledgement: the byte count (8 bytes,
// big endian) and the SHA-256 digest of the data, zero unless verification
// was asked for.
const ackLen = 8 + sha256.Size

// Mode bytes open a raw stream or connection and say what it carries. JSP
// says the same with the stream label (bulk) or the frame type (COMMAND).
const (
	modeBulk       = 'B' // bulk transfers, receiver counts
	modeBulkVerify = 'V' // bulk transfers, receiver also hashes
	modeEcho       = 'E' // round trips: echo every byte
)

// JSP stream labels of the bulk workload.
const (
	labelBulk       = "bench.bulk"
	labelBulkVerify = "bench.bulk.verify"
)

// Ack is the receiver's answer to one bulk transfer.
type Ack struct {
	// Count is the number of bytes received before FIN.
	Count int64
	// Digest is the SHA-256 of the received bytes when the transfer asked
	// for verification, otherwise zero.
	Digest [sha256.Size]byte
}

func (a Ack) append(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(a.Count))
	return append(b, a.Digest[:]...)
}

// readAck reads one acknowledgement.
func readAck(r io.Reader) (Ack, error) {
	var buf [ackLen]byte
	if _, err := io.ReadFull(r, buf[:]); err != nil {
		return Ack{}, fmt.Errorf("bench: read ack: %w", err)
	}
	var a Ack
	a.Count = int64(binary.BigEndian.Uint64(buf[:8]))
	copy(a.Digest[:], buf[8:])
	return a, nil
}

// Check compares a with the data that was sent. The digest is compared only
// when verify is set.
func (a Ack) Check(data []byte, verify bool) error {
	if a.Count != int64(len(data)) {
		return fmt.Errorf("bench: receiver counted %d bytes, sent %d", a.Count, len(data))
	}
	if verify && a.Digest != sha256.Sum256(data) {
		return errors.New("bench: receiver's SHA-256 differs from the data sent")
	}
	return nil
}

// sink reads r until EOF (or until limit bytes when limit >= 0) with
// ChunkSize reads, counting and, when verify is set, hashing. Hashing costs
// more than the transfer itself on loopback, which is why it only runs in
// verification transfers, outside the timed loop.
func sink(r io.Reader, buf []byte, limit int64, verify bool) (Ack, error) {
	var h hash.Hash
	if verify {
		h = sha256.New()
	}
	var n int64
	for limit < 0 || n < limit {
		p := buf
		if limit >= 0 && int64(len(p)) > limit-n {
			p = p[:limit-n]
		}
		m, err := r.Read(p)
		n += int64(m)
		if h != nil {
			h.Write(p[:m])
		}
		if err == io.EOF && limit < 0 {
			break
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return Ack{}, fmt.Errorf("bench: receive after %d bytes: %w", n, err)
		}
	}
	a := Ack{Count: n}
	if h != nil {
		h.Sum(a.Digest[:0])
	}
	return a, nil
}

// writeChunks writes data in ChunkSize pieces.
func writeChunks(w io.Writer, data []byte) error {
	for len(data) > 0 {
		n := min(len(data), ChunkSize)
		if _, err := w.Write(data[:n]); err != nil {
			return fmt.Errorf("bench: send: %w", err)
		}
		data = data[n:]
	}
	return nil
}

// echo copies everything it reads from rw back to rw until a read fails.
func echo(rw io.ReadWriter) error {
	buf := make([]byte, ChunkSize)
	for {
		n, err := rw.Read(buf)
		if n > 0 {
			if _, werr := rw.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err != nil {
			return err
		}
	}
}
