// Package onnxrt runs ONNX image classifiers with onnxruntime and keeps a bounded
// cache of ready sessions.
//
// It wraps github.com/yalue/onnxruntime_go (v1.27.0), which loads the onnxruntime
// 1.24.1 shared library at run time with dlopen; nothing is linked at build time.
// Install the library with scripts/install-onnxruntime.sh, which puts it at
// <repo>/third_party/onnxruntime/lib/libonnxruntime.so.1.
//
// Library search order (see ResolveLibraryPath):
//  1. Config.LibraryPath (normally a command-line flag);
//  2. the environment variable ONNXRUNTIME_LIB;
//  3. third_party/onnxruntime/lib/libonnxruntime.so.1 in the current working
//     directory or any of its parents;
//  4. the same relative path in the executable's directory or any of its parents.
//
// An explicit path (1 or 2) that does not exist is an error; it never falls back
// to the later places, so a typo cannot silently load another library.
//
// onnxruntime's environment is process-wide and onnxruntime_go can initialise it
// only once, so NewEnv loads the library on first use and keeps it loaded until
// the process exits. Several Env values may coexist (each with its own thread
// settings) as long as they name the same library file; naming another file is an
// error.
//
// A Session owns one onnxruntime session built from model bytes. Run takes a
// single float32 input tensor and returns the model's first output, which must be
// float32 too; the batch dimension (and any other symbolic dimension) may vary
// between calls. Run is safe for concurrent use.
//
// A Cache keeps sessions keyed by the SHA-256 of their model bytes, bounded by a
// session count and a total of model bytes, and evicts the least recently used.
// Callers hold a Lease while they use a session; an evicted session is destroyed
// only when its last lease is released, so eviction never breaks a running
// request. Concurrent cold requests for one model load and build it once.
//
// Env.LiveSessions counts sessions created and not yet destroyed, for tests and
// metrics.
package onnxrt
