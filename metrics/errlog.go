package metrics

import (
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap/zapcore"
)

// ErrorLogSize is how many log entries ErrorLog keeps.
const ErrorLogSize = 200

// LogEntry is one warning or error the dispatcher logged.
type LogEntry struct {
	Time    time.Time         `json:"time"`
	Level   string            `json:"level"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// ErrorLog is a zapcore.Core that keeps the last ErrorLogSize warnings and errors, for
// the admin API's recent errors: tee it beside the real core.
type ErrorLog struct {
	ring *errRing
	with []zapcore.Field
}

type errRing struct {
	mu      sync.Mutex
	entries [ErrorLogSize]LogEntry
	next    int
	n       int
}

// NewErrorLog returns an empty ErrorLog.
func NewErrorLog() *ErrorLog { return &ErrorLog{ring: &errRing{}} }

// Enabled is true for warnings and worse.
func (l *ErrorLog) Enabled(lvl zapcore.Level) bool { return lvl >= zapcore.WarnLevel }

// With returns a core that adds fields to what it keeps.
func (l *ErrorLog) With(fields []zapcore.Field) zapcore.Core {
	return &ErrorLog{ring: l.ring, with: append(append([]zapcore.Field(nil), l.with...), fields...)}
}

// Check adds the core to ce when the entry is a warning or worse.
func (l *ErrorLog) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if l.Enabled(e.Level) {
		return ce.AddCore(e, l)
	}
	return ce
}

// Write keeps the entry.
func (l *ErrorLog) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range l.with {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	kv := make(map[string]string, len(enc.Fields))
	for k, v := range enc.Fields {
		kv[k] = toText(v)
	}
	r := l.ring
	r.mu.Lock()
	r.entries[r.next] = LogEntry{Time: e.Time, Level: e.Level.String(), Message: e.Message, Fields: kv}
	r.next = (r.next + 1) % ErrorLogSize
	r.n = min(r.n+1, ErrorLogSize)
	r.mu.Unlock()
	return nil
}

// Sync does nothing.
func (l *ErrorLog) Sync() error { return nil }

// Entries returns what it keeps, oldest first.
func (l *ErrorLog) Entries() []LogEntry {
	r := l.ring
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]LogEntry, 0, r.n)
	for i := range r.n {
		out = append(out, r.entries[(r.next-r.n+i+ErrorLogSize)%ErrorLogSize])
	}
	return out
}

func toText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case error:
		return x.Error()
	case interface{ String() string }:
		return x.String()
	default:
		return fmt.Sprint(x)
	}
}
