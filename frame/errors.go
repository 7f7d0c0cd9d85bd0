package frame

import (
	"errors"
	"fmt"
)

// Every error in this file means the byte stream it came from can no longer be trusted:
// the dispatcher closes that connection (after a log line), as Pyro4 daemons do. Errors
// that only concern one request (a payload that cannot be peeked, say) are plain values
// returned by the functions that produce them.

// MagicError reports a header that does not start with "PYRO".
type MagicError struct{ Got [4]byte }

func (e *MagicError) Error() string {
	return fmt.Sprintf("frame: bad magic %q, want \"PYRO\"", e.Got[:])
}

// VersionError reports a header with a protocol version other than 48.
type VersionError struct{ Got uint16 }

func (e *VersionError) Error() string {
	return fmt.Sprintf("frame: unsupported protocol version %d, want %d", e.Got, Version)
}

// ChecksumError reports a header whose checksum field does not match its other fields.
type ChecksumError struct{ Got, Want uint16 }

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("frame: header checksum 0x%04x, computed 0x%04x", e.Got, e.Want)
}

// SizeError reports a message whose size is negative or over the configured limit.
type SizeError struct {
	What  string // "payload", "message" or "annotations"
	Size  int64
	Limit int64
}

func (e *SizeError) Error() string {
	if e.Size < 0 {
		return fmt.Sprintf("frame: negative %s length %d", e.What, e.Size)
	}
	return fmt.Sprintf("frame: %s size %d over the limit of %d bytes", e.What, e.Size, e.Limit)
}

// AnnotationError reports annotation chunks that are truncated or whose lengths do not add
// up to the header's annotation length.
type AnnotationError struct {
	Offset int    // byte offset of the bad chunk within the annotations
	Reason string // what was wrong
}

func (e *AnnotationError) Error() string {
	return fmt.Sprintf("frame: bad annotations at offset %d: %s", e.Offset, e.Reason)
}

// IsProtocolError reports whether err (or an error it wraps) is one of this package's
// stream errors, after which the connection must be closed.
func IsProtocolError(err error) bool {
	var (
		m *MagicError
		v *VersionError
		c *ChecksumError
		s *SizeError
		a *AnnotationError
	)
	return errors.As(err, &m) || errors.As(err, &v) || errors.As(err, &c) ||
		errors.As(err, &s) || errors.As(err, &a)
}
