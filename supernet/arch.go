package supernet

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Arch selects one subnet: a kernel size and expand ratio per elastic block, a depth per
// stage and an input resolution. Its JSON form is OFA's {"ks":[...],"e":[...],"d":[...],"r":R}.
type Arch struct {
	KS []int `json:"ks"`
	E  []int `json:"e"`
	D  []int `json:"d"`
	R  int   `json:"r"`
}

// maxArchBytes bounds the JSON an arch is parsed from; a valid one is a few hundred bytes.
const maxArchBytes = 64 << 10

// ParseArch decodes OFA's arch JSON strictly (unknown fields and trailing data are errors).
// It does not validate the arch against a space; use Spec.Canonical for that.
func ParseArch(data []byte) (Arch, error) {
	var a Arch
	if len(data) > maxArchBytes {
		return a, fmt.Errorf("arch: %d bytes, more than %d", len(data), maxArchBytes)
	}
	if err := strictUnmarshal(data, &a); err != nil {
		return a, fmt.Errorf("arch: %w", err)
	}
	return a, nil
}

// ReadArchArg parses a command-line arch: inline JSON, or @path to a JSON file.
func ReadArchArg(arg string) (Arch, error) {
	data, err := readArg(arg, maxArchBytes)
	if err != nil {
		return Arch{}, fmt.Errorf("arch: %w", err)
	}
	return ParseArch(data)
}

// maxArchList bounds an arch list (a search measures a few dozen subnets), and
// maxArchListBytes its JSON: a valid arch is well under a kilobyte.
const (
	maxArchList      = 1024
	maxArchListBytes = maxArchList * 1024
)

// ParseArchList decodes a JSON array of OFA arch objects, each as strictly as ParseArch.
func ParseArchList(data []byte) ([]Arch, error) {
	if len(data) > maxArchListBytes {
		return nil, fmt.Errorf("arch list: %d bytes, more than %d", len(data), maxArchListBytes)
	}
	var raw []json.RawMessage
	if err := strictUnmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("arch list: want a JSON array of archs: %w", err)
	}
	if len(raw) > maxArchList {
		return nil, fmt.Errorf("arch list: %d archs, more than %d", len(raw), maxArchList)
	}
	out := make([]Arch, len(raw))
	for i, r := range raw {
		a, err := ParseArch(r)
		if err != nil {
			return nil, fmt.Errorf("arch list: item %d: %w", i, err)
		}
		out[i] = a
	}
	return out, nil
}

// ReadArchListArg parses a command-line arch list: inline JSON, or @path to a JSON file.
func ReadArchListArg(arg string) ([]Arch, error) {
	data, err := readArg(arg, maxArchListBytes)
	if err != nil {
		return nil, fmt.Errorf("arch list: %w", err)
	}
	return ParseArchList(data)
}

// readArg returns arg, or the first limit+1 bytes of the file it names as @path.
func readArg(arg string, limit int) ([]byte, error) {
	p, ok := strings.CutPrefix(arg, "@")
	if !ok {
		return []byte(arg), nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return data, nil
}

func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// ValidateArch reports the first way a does not belong to the space, naming the field and the
// allowed values.
func (s *Spec) ValidateArch(a Arch) error {
	nb := s.NumBlocks()
	if len(a.KS) != nb {
		return fmt.Errorf("ks: %d values, want %d (one per block)", len(a.KS), nb)
	}
	if len(a.E) != nb {
		return fmt.Errorf("e: %d values, want %d (one per block)", len(a.E), nb)
	}
	if len(a.D) != len(s.Stages) {
		return fmt.Errorf("d: %d values, want %d (one per stage)", len(a.D), len(s.Stages))
	}
	for i, d := range a.D {
		if !contains(s.Stages[i].Depths, d) {
			return fmt.Errorf("d[%d]: %d not in %v", i, d, s.Stages[i].Depths)
		}
	}
	for i := range nb {
		if !contains(s.Kernels, a.KS[i]) {
			return fmt.Errorf("ks[%d]: %d not in %v", i, a.KS[i], s.Kernels)
		}
		if !contains(s.Expands, a.E[i]) {
			return fmt.Errorf("e[%d]: %d not in %v", i, a.E[i], s.Expands)
		}
	}
	if !contains(s.Resolutions, a.R) {
		return fmt.Errorf("r: %d not in %s", a.R, intsSummary(s.Resolutions))
	}
	return nil
}

// intsSummary prints a long evenly spaced list as lo..hi step k.
func intsSummary(v []int) string {
	if len(v) > 4 {
		step := v[1] - v[0]
		even := true
		for i := 1; i < len(v); i++ {
			even = even && v[i]-v[i-1] == step
		}
		if even {
			return fmt.Sprintf("%d..%d step %d", v[0], v[len(v)-1], step)
		}
	}
	return fmt.Sprint(v)
}

// Active reports whether elastic block b runs under a.
func (s *Spec) Active(a Arch, b int) bool {
	st, pos := s.BlockStage(b)
	return pos < a.D[st]
}

// Canonical validates a and sets the kernel and expand ratio of every block beyond its
// stage's depth to the smallest choice: those values do not change the subnet, so two
// archs with the same subnet get the same canonical form and hash.
func (s *Spec) Canonical(a Arch) (Arch, error) {
	if err := s.ValidateArch(a); err != nil {
		return Arch{}, err
	}
	c := Arch{KS: append([]int(nil), a.KS...), E: append([]int(nil), a.E...), D: append([]int(nil), a.D...), R: a.R}
	for b := range c.KS {
		if !s.Active(c, b) {
			c.KS[b], c.E[b] = s.Kernels[0], s.Expands[0]
		}
	}
	return c, nil
}

// JSON is the arch's compact JSON with fields in the order ks, e, d, r.
func (a Arch) JSON() []byte {
	b, err := json.Marshal(a)
	if err != nil {
		panic(err) // plain ints
	}
	return b
}

func (a Arch) String() string { return string(a.JSON()) }

// Hash is the hex SHA-256 of the arch's JSON; call it on a canonical arch to get a key
// that identifies the subnet within its supernet.
func (a Arch) Hash() string {
	h := sha256.Sum256(a.JSON())
	return hex.EncodeToString(h[:])
}

// Equal reports whether two archs are identical field by field.
func (a Arch) Equal(b Arch) bool { return bytes.Equal(a.JSON(), b.JSON()) }

// EncodingLen is the length of the space's integer encoding: resolution, width, one gene
// per elastic block (22 for OFA's MobileNetV3 space).
func (s *Spec) EncodingLen() int { return 2 + s.NumBlocks() }

// GeneChoices is the number of values each gene of the integer encoding can take.
func (s *Spec) GeneChoices() []int {
	g := make([]int, s.EncodingLen())
	g[0], g[1] = len(s.Resolutions), 1
	for b := range s.NumBlocks() {
		g[2+b] = 1 + len(s.Kernels)*len(s.Expands)
	}
	return g
}

// Encode maps a valid arch to NAT's integer string: x[0] the resolution index, x[1] the
// width-multiplier index (one width per supernet, so always 0), then per block 0 when the
// block is skipped, else 1 + kernelIndex*len(Expands) + expandIndex.
func (s *Spec) Encode(a Arch) ([]int, error) {
	if err := s.ValidateArch(a); err != nil {
		return nil, err
	}
	x := make([]int, s.EncodingLen())
	x[0] = indexOf(s.Resolutions, a.R)
	for b := range s.NumBlocks() {
		if s.Active(a, b) {
			x[2+b] = 1 + indexOf(s.Kernels, a.KS[b])*len(s.Expands) + indexOf(s.Expands, a.E[b])
		}
	}
	return x, nil
}

// Decode is the inverse of Encode; it returns a canonical arch. Within a stage the active
// blocks must come first and their count must be one of the stage's depth choices.
func (s *Spec) Decode(x []int) (Arch, error) {
	if len(x) != s.EncodingLen() {
		return Arch{}, fmt.Errorf("encoding: %d integers, want %d", len(x), s.EncodingLen())
	}
	g := s.GeneChoices()
	for i, v := range x {
		if v < 0 || v >= g[i] {
			return Arch{}, fmt.Errorf("encoding[%d]: %d not in [0,%d)", i, v, g[i])
		}
	}
	nb := s.NumBlocks()
	a := Arch{KS: make([]int, nb), E: make([]int, nb), D: make([]int, len(s.Stages)), R: s.Resolutions[x[0]]}
	for st, stage := range s.Stages {
		start := s.StageStart(st)
		d := 0
		for pos := range stage.MaxDepth() {
			v := x[2+start+pos]
			if v == 0 {
				a.KS[start+pos], a.E[start+pos] = s.Kernels[0], s.Expands[0]
				continue
			}
			if pos != d {
				return Arch{}, fmt.Errorf("encoding[%d]: stage %d has a block after a skipped one", 2+start+pos, st)
			}
			d++
			a.KS[start+pos] = s.Kernels[(v-1)/len(s.Expands)]
			a.E[start+pos] = s.Expands[(v-1)%len(s.Expands)]
		}
		if !contains(stage.Depths, d) {
			return Arch{}, fmt.Errorf("encoding: stage %d has %d active blocks, want one of %v", st, d, stage.Depths)
		}
		a.D[st] = d
	}
	return a, nil
}

func indexOf(v []int, x int) int {
	for i, y := range v {
		if y == x {
			return i
		}
	}
	return -1
}

// Uniform returns the arch with the same kernel, expand ratio and depth everywhere, each
// clamped to the nearest choice, at resolution r.
func (s *Spec) Uniform(k, e, d, r int) Arch {
	nb := s.NumBlocks()
	a := Arch{KS: make([]int, nb), E: make([]int, nb), D: make([]int, len(s.Stages)), R: nearest(s.Resolutions, r)}
	for b := range nb {
		a.KS[b], a.E[b] = nearest(s.Kernels, k), nearest(s.Expands, e)
	}
	for i, st := range s.Stages {
		a.D[i] = nearest(st.Depths, d)
	}
	c, _ := s.Canonical(a)
	return c
}

// Smallest and Largest are the extreme subnets at the lowest and highest resolution.
func (s *Spec) Smallest() Arch {
	return s.Uniform(s.Kernels[0], s.Expands[0], 0, s.Resolutions[0])
}

// Largest is the full supernet at its highest resolution.
func (s *Spec) Largest() Arch {
	return s.Uniform(s.Kernels[len(s.Kernels)-1], s.Expands[len(s.Expands)-1], 1<<30, s.Resolutions[len(s.Resolutions)-1])
}

func nearest(choices []int, v int) int {
	best := choices[0]
	for _, c := range choices {
		if abs(c-v) < abs(best-v) {
			best = c
		}
	}
	return best
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// ParseEncoding reads NAT's integer string as comma- or space-separated integers, or a JSON list.
func ParseEncoding(s string) ([]int, error) {
	s = strings.TrimSpace(strings.Trim(strings.TrimSpace(s), "[]"))
	f := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
	if len(f) > 4096 {
		return nil, errors.New("encoding: too long")
	}
	x := make([]int, len(f))
	for i, v := range f {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("encoding[%d]: %w", i, err)
		}
		x[i] = n
	}
	return x, nil
}

// Dims selects the elastic dimensions of a space. Progressive shrinking trains them one
// after another (kernel, then depth, then expand ratio) while the others stay at their
// largest choice.
type Dims struct{ Kernel, Depth, Expand bool }

// AllDims is every dimension elastic.
func AllDims() Dims { return Dims{Kernel: true, Depth: true, Expand: true} }

// String is the comma-separated form ParseDims reads.
func (d Dims) String() string {
	var parts []string
	if d.Kernel {
		parts = append(parts, "ks")
	}
	if d.Depth {
		parts = append(parts, "d")
	}
	if d.Expand {
		parts = append(parts, "e")
	}
	return strings.Join(parts, ",")
}

// ParseDims reads a comma-separated subset of ks, d and e (the OFA arch keys), or "all".
func ParseDims(s string) (Dims, error) {
	if strings.TrimSpace(s) == "all" {
		return AllDims(), nil
	}
	var d Dims
	for _, p := range strings.Split(s, ",") {
		switch strings.TrimSpace(p) {
		case "ks":
			d.Kernel = true
		case "d":
			d.Depth = true
		case "e":
			d.Expand = true
		default:
			return Dims{}, fmt.Errorf("elastic dimensions %q: want a comma-separated subset of ks, d, e (or all)", s)
		}
	}
	return d, nil
}

// Pin returns a with the dimensions that d leaves fixed set to their largest choice.
func (s *Spec) Pin(a Arch, d Dims) Arch {
	out := Arch{KS: slices.Clone(a.KS), E: slices.Clone(a.E), D: slices.Clone(a.D), R: a.R}
	for b := range out.KS {
		if !d.Kernel {
			out.KS[b] = s.Kernels[len(s.Kernels)-1]
		}
		if !d.Expand && b < len(out.E) {
			out.E[b] = s.Expands[len(s.Expands)-1]
		}
	}
	if !d.Depth {
		for i, st := range s.Stages {
			if i < len(out.D) {
				out.D[i] = st.Depths[len(st.Depths)-1]
			}
		}
	}
	if c, err := s.Canonical(out); err == nil {
		return c
	}
	return out
}

// SmallestIn is the smallest subnet when only d is elastic: the others at their largest.
func (s *Spec) SmallestIn(d Dims) Arch { return s.Pin(s.Smallest(), d) }
