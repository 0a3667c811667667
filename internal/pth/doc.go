// Package pth reads PyTorch checkpoints written by torch.save, natively and without Python.
//
// Both layouts torch.save has used are supported: the zip archive (PyTorch 1.6 and later: data.pkl plus one raw
// little-endian entry per storage) and the legacy pickle stream (magic number, protocol 1001, sys_info, the main
// pickle, the storage key list, then each storage's element count and bytes). The pickles are decoded with
// gopickle's unpickler but with this package's own class and persistent-id hooks, so only the handful of torch
// globals a state dict needs are understood; everything else becomes an inert placeholder that is ignored.
//
// The input is untrusted: every length, offset and shape read from the file is checked against what is left of the
// file before anything is allocated, each pickle is pre-scanned opcode by opcode (so gopickle never sees a length it
// could over-allocate for), the number of pickle opcodes is bounded in proportion to the file size, and any panic
// inside the unpickler is turned into an error. Storages are read with one ReadAt straight into the tensor's final
// slice where the view is contiguous.
package pth
