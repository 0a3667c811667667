// Command orteval measures an exported model's top-1 accuracy with onnxruntime on images
// preprocessed outside natgw: it reads (int32 label, float32 3×R×R tensor) records from
// stdin, as bench/orteval/prep.py writes them with PIL and PyTorch, runs them in batches
// and prints the accuracy as JSON. It is the independent check of the accuracy a served
// model claims.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/natgw/natgw/onnxrt"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "orteval:", err)
		os.Exit(1)
	}
}

func run() error {
	model := flag.String("model", "", "ONNX file")
	batch := flag.Int("batch", 50, "images per Run")
	threads := flag.Int("threads", 2, "intra-op threads")
	flag.Parse()
	data, err := os.ReadFile(*model)
	if err != nil {
		return err
	}
	env, err := onnxrt.NewEnv(onnxrt.Config{IntraOpThreads: *threads, InterOpThreads: 1})
	if err != nil {
		return err
	}
	sess, err := env.NewSession(data)
	if err != nil {
		return err
	}
	defer sess.Close()
	in := sess.Inputs()[0].Shape
	if len(in) != 4 || in[2] < 1 || in[2] != in[3] {
		return fmt.Errorf("input shape %v: want [N,3,R,R]", in)
	}
	r := int(in[2])
	per := 3 * r * r
	rd := bufio.NewReaderSize(os.Stdin, 1<<20)
	x := make([]float32, 0, *batch*per)
	var labels []int
	raw := make([]byte, 4*per)
	correct, n := 0, 0
	flush := func() error {
		if len(labels) == 0 {
			return nil
		}
		out, shape, err := sess.Run(context.Background(), x, []int64{int64(len(labels)), 3, int64(r), int64(r)})
		if err != nil {
			return err
		}
		c := int(shape[1])
		for i, l := range labels {
			row, best := out[i*c:(i+1)*c], 0
			for j, v := range row {
				if v > row[best] {
					best = j
				}
			}
			if best == l {
				correct++
			}
		}
		n += len(labels)
		x, labels = x[:0], labels[:0]
		return nil
	}
	for {
		var l int32
		if err := binary.Read(rd, binary.LittleEndian, &l); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return err
		}
		if _, err := io.ReadFull(rd, raw); err != nil {
			return fmt.Errorf("image %d: %w", n+len(labels), err)
		}
		for i := range per {
			x = append(x, math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
		}
		labels = append(labels, int(l))
		if len(labels) == *batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if n == 0 {
		return errors.New("no images on stdin")
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"model": *model, "resolution": r, "images": n, "top1": float64(correct) / float64(n)})
}
