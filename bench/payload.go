package bench

import (
	"encoding/binary"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// This file writes the messages the load generator sends, as a Pyro4 4.82 proxy writes
// them (util.py dumpsCall, core.py __pyroCreateConnection and __serializeBlobArgs).

// appendStr appends s as a bare value of ser: the payload frame writes for a string,
// less the serpent header line.
func appendStr(dst []byte, ser frame.Serializer, s string) []byte {
	start := len(dst)
	dst, _ = frame.AppendStringPayload(dst, ser, s)
	if ser == frame.Serpent {
		n := copy(dst[start:], dst[start+len(serpentHeader):])
		dst = dst[:start+n]
	}
	return dst
}

// HandshakeMessage is the CONNECT the load generator sends to reach object (seq 0,
// META_ON_CONNECT, {"handshake": "hello", "object": object}): a pooled dispatcher shares
// its handshake cache entry and pools with the load generator's connections.
func HandshakeMessage(ser frame.Serializer, object string) []byte {
	return frame.AppendMessage(nil, frame.Header{Type: frame.Connect, Flags: frame.FlagMetaOnConnect, Serializer: ser},
		nil, handshakePayload(nil, ser, object))
}

// CallMessage is the INVOKE of object.method(arg) with seq and flags, as a Pyro4 proxy
// sends it.
func CallMessage(ser frame.Serializer, seq uint16, flags frame.Flags, object, method, arg string) []byte {
	return frame.AppendMessage(nil, frame.Header{Type: frame.Invoke, Flags: flags, Seq: seq, Serializer: ser},
		nil, callPayload(nil, ser, object, method, arg))
}

// handshakePayload appends the CONNECT payload {"handshake": "hello", "object": object}.
func handshakePayload(dst []byte, ser frame.Serializer, object string) []byte {
	switch ser {
	case frame.Serpent:
		dst = append(dst, serpentHeader+"{'handshake':'hello','object':"...)
		return append(appendStr(dst, ser, object), '}')
	case frame.JSON:
		dst = append(dst, `{"handshake": "hello", "object": `...)
		return append(appendStr(dst, ser, object), '}')
	default:
		dst = append(dst, '{')
		dst = appendMarshalASCII(appendMarshalASCII(dst, "handshake"), "hello")
		dst = appendStr(appendMarshalASCII(dst, "object"), ser, object)
		return append(dst, '0')
	}
}

// callPayload appends the INVOKE payload of object.method(arg) with no keyword arguments.
func callPayload(dst []byte, ser frame.Serializer, object, method, arg string) []byte {
	switch ser {
	case frame.Serpent:
		dst = append(dst, serpentHeader+"("...)
		dst = append(appendStr(dst, ser, object), ',')
		dst = append(appendStr(dst, ser, method), ",("...)
		return append(appendStr(dst, ser, arg), ",),{})"...)
	case frame.JSON:
		dst = append(dst, `{"object": `...)
		dst = appendStr(dst, ser, object)
		dst = append(dst, `, "method": `...)
		dst = appendStr(dst, ser, method)
		dst = append(dst, `, "params": [`...)
		dst = appendStr(dst, ser, arg)
		return append(dst, `], "kwargs": {}}`...)
	default:
		// (object, method, [arg], {}): Pyro4 turns the arguments into a list.
		dst = append(dst, ')', 4)
		dst = appendStr(appendStr(dst, ser, object), ser, method)
		dst = append(dst, '[')
		dst = binary.LittleEndian.AppendUint32(dst, 1)
		dst = appendStr(dst, ser, arg)
		return append(dst, '{', '0')
	}
}

// BlobTopic is the info of the SerializedBlob calls the load generator makes.
const BlobTopic = "pyro-dispatch.bench"

// blobAnnotation appends the BLBI chunk of a SerializedBlob call of object.blob: the
// marshal of (BlobTopic, object, "blob").
func blobAnnotation(dst []byte, object string) []byte {
	v := []byte{')', 3}
	v = appendStr(v, frame.Marshal, BlobTopic)
	v = appendStr(v, frame.Marshal, object)
	v = appendStr(v, frame.Marshal, MethodBlob)
	return frame.AppendAnnotation(dst, frame.BLBI, v)
}
