// Package safetensors reads and writes natgw's native supernet weight files in the safetensors layout: an 8-byte
// little-endian header length, a JSON header mapping each tensor name to its dtype, shape and [begin, end) byte
// offsets into the data section (plus an optional "__metadata__" object of string values), then the data.
//
// Write produces deterministic bytes (tensors in the given order and packed back to back, metadata keys sorted, the
// header padded with spaces so the data section starts 8-byte aligned), which the reference Python safetensors
// loader accepts. Read treats its input as untrusted: header length, JSON, offsets, overlaps and shape×dtype sizes
// are all checked before any tensor memory is allocated, and each tensor is then read with one ReadAt straight into
// its result slice where the file layout and the host byte order allow.
package safetensors
