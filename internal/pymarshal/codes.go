// Package pymarshal names the type codes of Python's marshal format (CPython
// Python/marshal.c, format version 4), which frame (SerializedBlob info) and nsview (name
// server replies) both read.
package pymarshal

// Type codes; a code with FlagRef set makes the value take the next reference slot.
const (
	FlagRef            = 0x80
	Null               = '0'
	None               = 'N'
	False              = 'F'
	True               = 'T'
	StopIter           = 'S'
	Ellipsis           = '.'
	Int                = 'i'
	Int64              = 'I'
	Float              = 'f'
	BinaryFloat        = 'g'
	Complex            = 'x'
	BinaryComplex      = 'y'
	Long               = 'l'
	Bytes              = 's'
	Interned           = 't'
	Ref                = 'r'
	Tuple              = '('
	SmallTuple         = ')'
	List               = '['
	Dict               = '{'
	Code               = 'c'
	Unicode            = 'u'
	Set                = '<'
	Frozenset          = '>'
	ASCII              = 'a'
	ASCIIInterned      = 'A'
	ShortASCII         = 'z'
	ShortASCIIInterned = 'Z'
)
