package frame

import "encoding/binary"

// HeaderSize is the size of a Pyro4 message header in bytes.
const HeaderSize = 24

// Version is the only Pyro4 protocol version this package speaks (Pyro4 4.x).
const Version = 48

// MaxDataLen is the largest payload length a header can carry (a signed 32-bit field).
const MaxDataLen = 1<<31 - 1

const checksumMagic = 0x34E9

// Header is a decoded Pyro4 message header. It is a plain value: parsing and writing it
// never allocate.
type Header struct {
	Type       MsgType
	Flags      Flags
	Seq        uint16
	DataLen    int // payload length, 0..MaxDataLen
	Serializer Serializer
	AnnLen     int // total length of the annotation chunks, 0..65535
}

// Checksum returns the header checksum Pyro4 computes for h.
func (h Header) Checksum() uint16 {
	return uint16((uint32(h.Type) + Version + uint32(h.DataLen) + uint32(h.AnnLen) +
		uint32(h.Serializer) + uint32(h.Flags) + uint32(h.Seq) + checksumMagic) & 0xFFFF)
}

// BodyLen returns the number of bytes that follow the header: annotations plus payload.
func (h Header) BodyLen() int { return h.AnnLen + h.DataLen }

// ParseHeader decodes and validates the first HeaderSize bytes of b: magic, version,
// checksum and a non-negative payload length. b must hold at least HeaderSize bytes.
// Size limits are checked separately by Limits.Check.
func ParseHeader(b []byte) (Header, error) {
	_ = b[HeaderSize-1]
	if b[0] != 'P' || b[1] != 'Y' || b[2] != 'R' || b[3] != 'O' {
		return Header{}, &MagicError{Got: [4]byte(b[:4])}
	}
	if v := binary.BigEndian.Uint16(b[4:]); v != Version {
		return Header{}, &VersionError{Got: v}
	}
	dataLen := int32(binary.BigEndian.Uint32(b[12:]))
	h := Header{
		Type:       MsgType(binary.BigEndian.Uint16(b[6:])),
		Flags:      Flags(binary.BigEndian.Uint16(b[8:])),
		Seq:        binary.BigEndian.Uint16(b[10:]),
		DataLen:    int(dataLen),
		Serializer: Serializer(binary.BigEndian.Uint16(b[16:])),
		AnnLen:     int(binary.BigEndian.Uint16(b[18:])),
	}
	// Pyro4 computes the checksum over the signed length; the low 16 bits are the same.
	if got, want := binary.BigEndian.Uint16(b[22:]), h.Checksum(); got != want {
		return Header{}, &ChecksumError{Got: got, Want: want}
	}
	if dataLen < 0 {
		return Header{}, &SizeError{What: "payload", Size: int64(dataLen)}
	}
	return h, nil
}

// Put writes h into the first HeaderSize bytes of b, with magic, version and checksum.
// The caller keeps DataLen within 0..MaxDataLen and AnnLen within 0..65535.
func (h Header) Put(b []byte) {
	_ = b[HeaderSize-1]
	copy(b, "PYRO")
	binary.BigEndian.PutUint16(b[4:], Version)
	binary.BigEndian.PutUint16(b[6:], uint16(h.Type))
	binary.BigEndian.PutUint16(b[8:], uint16(h.Flags))
	binary.BigEndian.PutUint16(b[10:], h.Seq)
	binary.BigEndian.PutUint32(b[12:], uint32(h.DataLen))
	binary.BigEndian.PutUint16(b[16:], uint16(h.Serializer))
	binary.BigEndian.PutUint16(b[18:], uint16(h.AnnLen))
	binary.BigEndian.PutUint16(b[20:], 0)
	binary.BigEndian.PutUint16(b[22:], h.Checksum())
}

// Append appends the encoded header to dst and returns the extended slice.
func (h Header) Append(dst []byte) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	h.Put(dst[n:])
	return dst
}

// Limits bounds what a peer may send. A zero field means "no limit" except where noted.
type Limits struct {
	// MaxMessageSize bounds payload plus annotations, as Pyro4's MAX_MESSAGE_SIZE does.
	MaxMessageSize int64
	// MaxAnnotations bounds the annotation bytes (the header field allows up to 65535).
	MaxAnnotations int
}

// Check returns a *SizeError when h is over a limit.
func (l Limits) Check(h Header) error {
	if l.MaxAnnotations > 0 && h.AnnLen > l.MaxAnnotations {
		return &SizeError{What: "annotations", Size: int64(h.AnnLen), Limit: int64(l.MaxAnnotations)}
	}
	if l.MaxMessageSize > 0 && int64(h.BodyLen()) > l.MaxMessageSize {
		return &SizeError{What: "message", Size: int64(h.BodyLen()), Limit: l.MaxMessageSize}
	}
	return nil
}
