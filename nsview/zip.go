package nsview

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// zipState keeps the zlib reader, writer and buffers of RewriteCompressed.
type zipState struct {
	r        io.ReadCloser
	w        *zlib.Writer
	inflated bytes.Buffer
	plain    []byte
}

// RewriteCompressed is Rewrite for a payload with frame.FlagCompressed: zlib data, as
// Pyro4 writes it when config.COMPRESSION is on. It inflates the payload (at most
// Limits.MaxInflated bytes, else an ErrLimit error), rewrites it, and when something
// changed deflates the result again (zlib, default level: Python's zlib.decompress reads
// it; the bytes are not those Python would write), so the flag stays set. When nothing
// changed, out is dst with the original compressed payload appended.
func (rw *Rewriter) RewriteCompressed(dst, payload []byte, ser frame.Serializer, translate Translate) (out []byte, changed bool, err error) {
	if err := checkSerializer(ser); err != nil {
		return dst, false, err
	}
	defer rw.release()
	plain, err := rw.inflate(payload, ser)
	if err != nil {
		return dst, false, err
	}
	rw.zip.plain, changed, err = rw.Rewrite(rw.zip.plain[:0], plain, ser, translate)
	if err != nil || !changed {
		if err == nil {
			dst = append(dst, payload...)
		}
		return dst, false, err
	}
	buf := bytes.NewBuffer(dst)
	if rw.zip.w == nil {
		rw.zip.w = zlib.NewWriter(buf)
	} else {
		rw.zip.w.Reset(buf)
	}
	if _, err := rw.zip.w.Write(rw.zip.plain); err != nil {
		return dst, false, err
	}
	if err := rw.zip.w.Close(); err != nil {
		return dst, false, err
	}
	return buf.Bytes(), true, nil
}

// inflate decompresses payload into rw.zip.inflated, bounded by Limits.MaxInflated.
func (rw *Rewriter) inflate(payload []byte, ser frame.Serializer) ([]byte, error) {
	z := &rw.zip
	var err error
	if z.r == nil {
		z.r, err = zlib.NewReader(bytes.NewReader(payload))
	} else {
		err = z.r.(zlib.Resetter).Reset(bytes.NewReader(payload), nil)
	}
	if err != nil {
		return nil, &DecodeError{Serializer: ser, Reason: fmt.Sprintf("zlib: %v", err), Err: ErrMalformed}
	}
	max := rw.Limits.inflated()
	z.inflated.Reset()
	if _, err := z.inflated.ReadFrom(io.LimitReader(z.r, int64(max)+1)); err != nil {
		return nil, &DecodeError{Serializer: ser, Offset: z.inflated.Len(), Reason: fmt.Sprintf("zlib: %v", err), Err: ErrMalformed}
	}
	if z.inflated.Len() > max {
		return nil, &DecodeError{Serializer: ser, Offset: max, Reason: "inflates beyond Limits.MaxInflated", Err: ErrLimit}
	}
	return z.inflated.Bytes(), nil
}
