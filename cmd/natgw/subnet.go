package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/natgw/natgw/internal/atomicfile"
	"github.com/natgw/natgw/supernet"
)

// loadSubnet reads the --supernet checkpoint and extracts the --arch subnet.
func loadSubnet(ckpt, archArg string) (*supernet.Supernet, *supernet.Subnet, error) {
	arch, err := supernet.ReadArchArg(archArg)
	if err != nil {
		return nil, nil, err
	}
	sn, err := supernet.Load(ckpt, supernet.LoadOptions{})
	if err != nil {
		return nil, nil, err
	}
	sub, err := sn.Extract(arch)
	if err != nil {
		return nil, nil, fmt.Errorf("arch outside %s: %w", sn.Spec.Name, err)
	}
	return sn, sub, nil
}

// subnetInfo is what `natgw subnet info` prints.
type subnetInfo struct {
	Arch       json.RawMessage `json:"arch"`
	Hash       string          `json:"hash"`
	Encoding   []int           `json:"encoding"`
	Resolution int             `json:"resolution"`
	MAdds      int64           `json:"madds"`
	Params     int64           `json:"params"`
	Spec       string          `json:"spec"`
	Classes    int             `json:"classes"`
	Blocks     int             `json:"blocks"`
}

func cmdSubnetInfo(ctx context.Context, env *cli, args []string) error {
	fs := newFlags(env, "subnet info")
	ckpt := fs.String("supernet", "", "supernet checkpoint (OFA .pth or natgw native)")
	arch := fs.String("arch", "", `arch as OFA JSON {"ks":[...],"e":[...],"d":[...],"r":R} or @file.json`)
	if err := parse(fs, args, "supernet", "arch"); err != nil {
		return helpOK(err)
	}
	sn, sub, err := loadSubnet(*ckpt, *arch)
	if err != nil {
		return err
	}
	enc, err := sn.Spec.Encode(sub.Arch)
	if err != nil {
		return err
	}
	c := sub.Count()
	out, err := json.Marshal(subnetInfo{
		Arch: sub.Arch.JSON(), Hash: sub.Arch.Hash(), Encoding: enc, Resolution: sub.Resolution,
		MAdds: c.MAdds, Params: c.Params, Spec: sn.Spec.Name, Classes: sn.Spec.Classes, Blocks: len(sub.Blocks),
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, string(out))
	return nil
}

func parseShape(s string) ([]int, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return nil, fmt.Errorf("--shape %q: want N,3,R,R", s)
	}
	shape := make([]int, 4)
	for i, p := range parts {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || v < 1 || v > 1<<16 {
			return nil, fmt.Errorf("--shape %q: dimension %d is not a positive integer ≤ 65536", s, i)
		}
		shape[i] = v
	}
	if shape[1] != 3 {
		return nil, fmt.Errorf("--shape %q: 3 channels expected, got %d", s, shape[1])
	}
	return shape, nil
}

func cmdSubnetForward(ctx context.Context, env *cli, args []string) error {
	fs := newFlags(env, "subnet forward")
	ckpt := fs.String("supernet", "", "supernet checkpoint (OFA .pth or natgw native)")
	arch := fs.String("arch", "", "arch as OFA JSON or @file.json")
	in := fs.String("input", "", "raw little-endian float32 NCHW input")
	shapeArg := fs.String("shape", "", "input shape N,3,R,R")
	outPath := fs.String("output", "", "where to write raw float32 logits [N, classes]")
	if err := parse(fs, args, "supernet", "arch", "input", "shape", "output"); err != nil {
		return helpOK(err)
	}
	shape, err := parseShape(*shapeArg)
	if err != nil {
		return usageError{err.Error()}
	}
	n, h, w := shape[0], shape[2], shape[3]
	want := int64(n) * 3 * int64(h) * int64(w) * 4
	st, err := os.Stat(*in)
	if err != nil {
		return err
	}
	if st.Size() != want {
		return fmt.Errorf("input %s: %d bytes, shape %s needs %d", *in, st.Size(), *shapeArg, want)
	}
	_, sub, err := loadSubnet(*ckpt, *arch)
	if err != nil {
		return err
	}
	if h != sub.Resolution || w != sub.Resolution {
		return fmt.Errorf("input is %dx%d but the arch's resolution r is %d", h, w, sub.Resolution)
	}
	raw, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	x := make([]float32, len(raw)/4)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	logits, err := sub.Compile().Forward(ctx, x, n, h, w)
	if err != nil {
		return err
	}
	buf := make([]byte, 4*len(logits))
	for i, v := range logits {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
	}
	return writeFileAtomic(*outPath, buf)
}

// writeFileAtomic writes through a temporary file so that a failed run leaves no partial output.
func writeFileAtomic(path string, data []byte) error { return atomicfile.Write(path, data) }
