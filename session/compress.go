package session

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/jetstreamproto/jsp/jsperr"
)

// CapZstd is the HELLO/WELCOME capability that enables zstd payload
// compression (JSP §11.4).
const CapZstd = "zstd"

// DefaultCompressThreshold is the payload size from which messages are
// compressed when both sides offer zstd (JSP §11.4). Below it, the frame
// header and CPU cost outweigh the saving on typical chat text.
const DefaultCompressThreshold = 512

// The encoder and decoder are shared: zstd's EncodeAll/DecodeAll are safe for
// concurrent use, and creating them costs far more than one message.
var (
	zOnce sync.Once
	zEnc  *zstd.Encoder
	zDec  *zstd.Decoder
	zErr  error
)

func zstdCodecs() (*zstd.Encoder, *zstd.Decoder, error) {
	zOnce.Do(func() {
		zEnc, zErr = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
		if zErr != nil {
			return
		}
		// Window and memory caps bound what a hostile frame can make us
		// allocate, independent of the per-call size check below.
		zDec, zErr = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0),
			zstd.WithDecoderMaxMemory(uint64(2<<20)), zstd.WithDecoderMaxWindow(1<<20))
	})
	return zEnc, zDec, zErr
}

// compress appends the zstd compression of p to dst. ok is false when the
// result would not be smaller, in which case the caller sends p as is.
func compress(dst, p []byte) (out []byte, ok bool) {
	enc, _, err := zstdCodecs()
	if err != nil {
		return dst, false
	}
	start := len(dst)
	out = enc.EncodeAll(p, dst)
	if len(out)-start >= len(p) {
		return out[:start], false
	}
	return out, true
}

// decompress returns the decompression of p, failing with
// COMPRESSION_ERROR when p is corrupt or expands past limit bytes.
func decompress(p []byte, limit int) ([]byte, error) {
	_, dec, err := zstdCodecs()
	if err != nil {
		return nil, jsperr.Wrap(jsperr.CompressionError, err)
	}
	// The frame header may declare the content size; check it before the
	// decoder allocates so a small frame cannot claim gigabytes.
	var h zstd.Header
	if err := h.Decode(p); err != nil {
		return nil, jsperr.Newf(jsperr.CompressionError, "zstd header: %v", err)
	}
	if h.HasFCS && h.FrameContentSize > uint64(limit) {
		return nil, jsperr.Newf(jsperr.CompressionError, "zstd content size %d over limit %d", h.FrameContentSize, limit)
	}
	out, err := dec.DecodeAll(p, nil)
	if err != nil {
		return nil, jsperr.Newf(jsperr.CompressionError, "zstd: %v", err)
	}
	if len(out) > limit {
		return nil, jsperr.New(jsperr.CompressionError, fmt.Sprintf("decompressed size %d over limit %d", len(out), limit))
	}
	return out, nil
}
