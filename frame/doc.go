// Package frame is the Pyro4 (protocol version 48) wire codec: message header, checksum,
// annotation chunks, a reader that buffers only header and annotations, BLBI decoding,
// bounded payload peeking and the two replies the dispatcher writes itself.
// It never deserializes a whole payload and imports only the standard library.
package frame
