// Command floorserve is the least an HTTP inference server can do, as a floor under the
// gateway's batch-1 latency: net/http alone (no router, middleware, metrics or logs), the
// body read into one reused buffer, its binary tensor handed to onnxruntime in place, and
// the logits written back as a small JSON array. It answers every POST that bench/ortrun
// -pair sends to /v2/models/ID/infer. If even this costs more than 1.10x the in-process Run,
// the gap is the machine's (loopback TCP, scheduling on few cores), not the gateway's.
//
//	floorserve -model m.onnx -addr 127.0.0.1:8090 [-mode inline|locked] [-threads 2] [-spin run]
//	floorserve -static answer.json -addr 127.0.0.1:8090
//
// -mode inline runs the model on the handler's goroutine; locked hands it to one goroutine
// locked to its OS thread, as the gateway's batcher does, so the two differ by the hand-off.
// -static answers every GET with the file's bytes (a /v1/models answer): the floor under
// the gateway's GET /v1/models tail.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
	"unsafe"

	"github.com/natgw/natgw/onnxrt"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "floorserve:", err)
		os.Exit(1)
	}
}

func run() error {
	model := flag.String("model", "", "ONNX file")
	static := flag.String("static", "", "instead of a model: answer every GET with this file's bytes as JSON")
	addr := flag.String("addr", "127.0.0.1:8090", "listen address (loopback)")
	mode := flag.String("mode", "inline", "inline: run on the handler's goroutine; locked: hand off to a goroutine locked to one OS thread")
	threads := flag.Int("threads", 2, "onnxruntime intra-op threads")
	spinName := flag.String("spin", "run", "onnxruntime spin policy: never, run, always")
	flag.Parse()
	if *static != "" {
		b, err := os.ReadFile(*static)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "floorserve: %d bytes to every GET, listening on %s\n", len(b), *addr)
		return http.ListenAndServe(*addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			_, _ = w.Write(b)
		}))
	}
	if *model == "" {
		return errors.New("-model or -static is required")
	}
	if *mode != "inline" && *mode != "locked" {
		return fmt.Errorf("-mode %q: want inline or locked", *mode)
	}
	spin, err := onnxrt.ParseSpin(*spinName)
	if err != nil {
		return err
	}
	env, err := onnxrt.NewEnv(onnxrt.Config{IntraOpThreads: *threads, InterOpThreads: 1, Spin: spin})
	if err != nil {
		return err
	}
	defer env.Close()
	b, err := os.ReadFile(*model)
	if err != nil {
		return err
	}
	sess, err := env.NewSession(b)
	if err != nil {
		return err
	}
	defer sess.Close()
	shape := append([]int64(nil), sess.Inputs()[0].Shape...)
	if len(shape) != 4 || shape[1] < 1 || shape[2] < 1 || shape[3] < 1 {
		return fmt.Errorf("%s: input shape %v: want [N,3,R,R] with R fixed", *model, shape)
	}
	shape[0] = 1
	floats := int(shape[1] * shape[2] * shape[3])
	ctx := context.Background()

	type result struct {
		y   []float32
		err error
	}
	type job struct {
		x    []float32
		done chan result
	}
	jobs := make(chan job)
	if *mode == "locked" {
		go func() {
			runtime.LockOSThread()
			for j := range jobs {
				y, _, err := sess.Run(ctx, j.x, shape)
				j.done <- result{y, err}
			}
		}()
	}
	var mu sync.Mutex // one client at a time: one body buffer, one reply buffer
	body := make([]byte, 0, 4*floats+4096)
	reply := make([]byte, 0, 4096)
	done := make(chan result, 1)
	h := func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		n := int(r.ContentLength)
		hl, err := strconv.Atoi(r.Header.Get("Inference-Header-Content-Length"))
		if r.Method != http.MethodPost || n < 4*floats || err != nil || n-hl != 4*floats || n+3 > cap(body) {
			http.Error(w, "want a binary OIP request of one image", http.StatusBadRequest)
			return
		}
		// Offset the read so that the tensor starts 4-byte aligned: onnxruntime reads it in place.
		pad := (4 - hl%4) % 4
		buf := body[pad : pad+n]
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		x := unsafe.Slice((*float32)(unsafe.Pointer(&buf[hl])), floats) // the machine's byte order, as the gateway assumes
		var y []float32
		if *mode == "locked" {
			jobs <- job{x, done}
			res := <-done
			y, err = res.y, res.err
		} else {
			y, _, err = sess.Run(ctx, x, shape)
		}
		if err != nil { // a failed run must not look like a fast answer
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		reply = append(reply[:0], `{"outputs":[{"name":"logits","datatype":"FP32","data":[`...)
		for i, v := range y {
			if i > 0 {
				reply = append(reply, ',')
			}
			reply = strconv.AppendFloat(reply, float64(v), 'g', -1, 32)
		}
		reply = append(reply, "]}]}"...)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(reply)))
		_, _ = w.Write(reply)
	}
	fmt.Fprintf(os.Stderr, "floorserve: %s, input %v, mode %s, listening on %s\n", *model, shape, *mode, *addr)
	return http.ListenAndServe(*addr, http.HandlerFunc(h))
}
