package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/natgw/natgw/onnxrt"
)

// pairs alternates one in-process Run with one request to the gateway, n times (the order
// flipping each time), so that both sides of every pair see the machine in the same state: on
// this project's VM the speed of either alone drifts by 1.5x within minutes. The request goes
// over one raw keep-alive socket (no HTTP client library, whose own cost is 0.3 ms here).
// It returns the latencies of both sides and the median of the per-pair ratios.
func pairs(ctx context.Context, sess *onnxrt.Session, x []float32, shape []int64, target string, body []byte, headerLen, n int) (local, remote []time.Duration, ratio float64, err error) {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return nil, nil, 0, fmt.Errorf("-pair %q: want http://127.0.0.1:PORT/v2/models/ID/infer", target)
	}
	// As bench/loadgen: benchmark traffic never leaves the machine.
	if ip := net.ParseIP(u.Hostname()); (ip == nil || !ip.IsLoopback()) && u.Hostname() != "localhost" {
		return nil, nil, 0, fmt.Errorf("-pair host %q is not loopback", u.Hostname())
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		return nil, nil, 0, err
	}
	defer conn.Close()
	req := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\nInference-Header-Content-Length: %d\r\n\r\n",
		u.RequestURI(), u.Host, len(body), headerLen)
	req = append(req, body...)
	br := bufio.NewReaderSize(conn, 64<<10)
	post := func() (time.Duration, error) {
		t0 := time.Now()
		if _, err := conn.Write(req); err != nil {
			return 0, err
		}
		status, err := readResponse(br)
		if err != nil {
			return 0, err
		}
		if status != 200 {
			return 0, fmt.Errorf("gateway answered %d", status)
		}
		return time.Since(t0), nil
	}
	runOnce := func() (time.Duration, error) {
		t0 := time.Now()
		_, _, err := sess.Run(ctx, x, shape)
		return time.Since(t0), err
	}
	for range 20 {
		if _, err := post(); err != nil {
			return nil, nil, 0, err
		}
	}
	ratios := make([]float64, n)
	local, remote = make([]time.Duration, n), make([]time.Duration, n)
	for i := range n {
		var a, b time.Duration
		if i%2 == 0 {
			if a, err = runOnce(); err == nil {
				b, err = post()
			}
		} else {
			if b, err = post(); err == nil {
				a, err = runOnce()
			}
		}
		if err != nil {
			return nil, nil, 0, err
		}
		local[i], remote[i] = a, b
		ratios[i] = float64(b) / float64(a)
	}
	sort.Float64s(ratios)
	return local, remote, ratios[n/2], nil
}

// readResponse reads one HTTP/1.1 response with a Content-Length and returns its status.
func readResponse(br *bufio.Reader) (int, error) {
	status, length := 0, -1
	for first := true; ; first = false {
		line, err := br.ReadString('\n')
		if err != nil {
			return 0, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if first {
			f := strings.Fields(line)
			if len(f) < 2 {
				return 0, fmt.Errorf("bad status line %q", line)
			}
			if status, err = strconv.Atoi(f[1]); err != nil {
				return 0, fmt.Errorf("bad status line %q", line)
			}
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Content-Length") {
			if length, err = strconv.Atoi(strings.TrimSpace(v)); err != nil {
				return 0, fmt.Errorf("bad Content-Length %q", v)
			}
		}
	}
	if length < 0 {
		return 0, fmt.Errorf("response without Content-Length")
	}
	if _, err := io.CopyN(io.Discard, br, int64(length)); err != nil {
		return 0, err
	}
	return status, nil
}

// bodyTail is the input a binary OIP request body carries: its last 4*n bytes.
func bodyTail(raw []byte, n int) ([]byte, error) {
	if len(raw) < 4*n {
		return nil, fmt.Errorf("input file has %d bytes, the model's input needs %d", len(raw), 4*n)
	}
	return raw[len(raw)-4*n:], nil
}

// batchCeiling alternates k batch-1 runs with one batch-k run of the same images, rounds
// times, and returns the batch-1 and batch-k latencies and the median over rounds of the
// batch-k run's images/s over the k batch-1 runs' (the pairing again cancels the drift).
func batchCeiling(ctx context.Context, sess *onnxrt.Session, x []float32, shape []int64, k, rounds int) (one, many []time.Duration, gain float64, err error) {
	xk := make([]float32, 0, k*len(x))
	for range k {
		xk = append(xk, x...)
	}
	shapeK := append([]int64{int64(k)}, shape[1:]...)
	for range 3 {
		if _, _, err := sess.Run(ctx, xk, shapeK); err != nil {
			return nil, nil, 0, err
		}
	}
	gains := make([]float64, rounds)
	for i := range rounds {
		var sum time.Duration
		for range k {
			t0 := time.Now()
			if _, _, err := sess.Run(ctx, x, shape); err != nil {
				return nil, nil, 0, err
			}
			d := time.Since(t0)
			one = append(one, d)
			sum += d
		}
		t0 := time.Now()
		if _, _, err := sess.Run(ctx, xk, shapeK); err != nil {
			return nil, nil, 0, err
		}
		d := time.Since(t0)
		many = append(many, d)
		gains[i] = float64(sum) / float64(d)
	}
	sort.Float64s(gains)
	return one, many, gains[rounds/2], nil
}
