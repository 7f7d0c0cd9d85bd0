package frame

import "strconv"

// MsgType is the message type field of a Pyro4 header.
type MsgType uint16

// Message types (Pyro4 message.py MSG_*).
const (
	Connect     MsgType = 1
	ConnectOK   MsgType = 2
	ConnectFail MsgType = 3
	Invoke      MsgType = 4
	Result      MsgType = 5
	Ping        MsgType = 6
)

var msgTypeNames = [...]string{"", "CONNECT", "CONNECTOK", "CONNECTFAIL", "INVOKE", "RESULT", "PING"}

// String returns the Pyro4 name of the type, such as "INVOKE", or "type(N)" when unknown.
func (t MsgType) String() string {
	if int(t) > 0 && int(t) < len(msgTypeNames) {
		return msgTypeNames[t]
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// Flags is the flags bit set of a Pyro4 header.
type Flags uint16

// Flag bits (Pyro4 message.py FLAGS_*).
const (
	FlagException        Flags = 1 << 0
	FlagCompressed       Flags = 1 << 1
	FlagOneway           Flags = 1 << 2
	FlagBatch            Flags = 1 << 3
	FlagMetaOnConnect    Flags = 1 << 4
	FlagItemStreamResult Flags = 1 << 5
	FlagKeepSerialized   Flags = 1 << 6
)

var flagNames = [...]string{"EXCEPTION", "COMPRESSED", "ONEWAY", "BATCH", "META_ON_CONNECT", "ITEMSTREAMRESULT", "KEEPSERIALIZED"}

// Has reports whether every bit of x is set in f.
func (f Flags) Has(x Flags) bool { return f&x == x }

// String lists the set flags joined by "|", such as "ONEWAY|BATCH"; unknown bits are
// shown as hex, and no flags as "0".
func (f Flags) String() string {
	if f == 0 {
		return "0"
	}
	var s string
	for i, name := range flagNames {
		if f&(1<<i) != 0 {
			if s != "" {
				s += "|"
			}
			s += name
		}
	}
	if rest := f &^ (1<<len(flagNames) - 1); rest != 0 {
		if s != "" {
			s += "|"
		}
		s += "0x" + strconv.FormatUint(uint64(rest), 16)
	}
	return s
}

// Serializer is the serializer id field of a Pyro4 header.
type Serializer uint16

// Serializer ids (Pyro4 util.py serializer_id).
const (
	Serpent     Serializer = 1
	JSON        Serializer = 2
	Marshal     Serializer = 3
	Pickle      Serializer = 4
	Dill        Serializer = 5
	Msgpack     Serializer = 6
	Cloudpickle Serializer = 7
)

var serializerNames = [...]string{"", "serpent", "json", "marshal", "pickle", "dill", "msgpack", "cloudpickle"}

// String returns the Pyro4 name of the serializer, such as "serpent", or "serializer(N)".
func (s Serializer) String() string {
	if int(s) > 0 && int(s) < len(serializerNames) {
		return serializerNames[s]
	}
	return "serializer(" + strconv.Itoa(int(s)) + ")"
}

// ParseSerializer returns the serializer with the given Pyro4 name.
func ParseSerializer(name string) (Serializer, bool) {
	for i, n := range serializerNames {
		if i > 0 && n == name {
			return Serializer(i), true
		}
	}
	return 0, false
}
