package supernet

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/natgw/natgw/internal/testutil"
)

type parityCase struct {
	ID         string `json:"id"`
	Config     Arch   `json:"config"`
	Resolution int    `json:"resolution"`
	Input      struct {
		File  string `json:"file"`
		Shape []int  `json:"shape"`
	} `json:"input"`
	Logits struct {
		File  string `json:"file"`
		Shape []int  `json:"shape"`
	} `json:"logits"`
	MAddsExact int64 `json:"madds_exact"`
	Params     int64 `json:"params"`
}

var parityIDs = []string{"A0_smallest", "A1_largest", "A2_uniform_k5_e4_d3", "A3_random", "A4_random", "A5_random"}

func loadCase(t testing.TB, dir, id string) parityCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, id+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var c parityCase
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	c.Config.R = c.Resolution
	return c
}

func TestKeysMatchOFAStateDict(t *testing.T) {
	dir := testutil.Shared(t, "fixtures/ofa-parity")
	data, err := os.ReadFile(filepath.Join(dir, "state_dict_keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Keys []struct {
			Key   string `json:"key"`
			Shape []int  `json:"shape"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var want []Key
	for _, k := range doc.Keys {
		if !hasSuffix(k.Key, "num_batches_tracked") {
			want = append(want, Key{k.Key, k.Shape})
		}
	}
	got := OFAMobileNetV3(1.0, 102).Keys()
	if len(got) != len(want) {
		t.Fatalf("%d keys, OFA has %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Name != want[i].Name || !slices.Equal(got[i].Shape, want[i].Shape) {
			t.Fatalf("key %d: got %s %v, OFA has %s %v", i, got[i].Name, got[i].Shape, want[i].Name, want[i].Shape)
		}
	}
}

func TestCountsMatchOFA(t *testing.T) {
	dir := testutil.Shared(t, "fixtures/ofa-parity")
	spec := OFAMobileNetV3(1.0, 102)
	sn, err := Random(spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range parityIDs {
		t.Run(id, func(t *testing.T) {
			c := loadCase(t, dir, id)
			sub, err := sn.Extract(c.Config)
			if err != nil {
				t.Fatal(err)
			}
			got := sub.Count()
			if got.MAdds != c.MAddsExact || got.Params != c.Params {
				t.Errorf("madds %d params %d, OFA %d %d", got.MAdds, got.Params, c.MAddsExact, c.Params)
			}
		})
	}
}

var (
	ofaOnce sync.Once
	ofaNet  *Supernet
	ofaErr  error
)

func ofaSupernet(t testing.TB) (*Supernet, string) {
	dir := testutil.Shared(t, "fixtures/ofa-parity")
	ofaOnce.Do(func() {
		ofaNet, ofaErr = Load(filepath.Join(dir, "ofa_mbv3_d234_e346_k357_w1.0_seed0.pth"), LoadOptions{})
	})
	if ofaErr != nil {
		t.Fatal(ofaErr)
	}
	return ofaNet, dir
}

func TestLogitsMatchOFA(t *testing.T) {
	sn, dir := ofaSupernet(t)
	if sn.Spec.Name != "ofa_mbv3_d234_e346_k357_w1.0" || sn.Spec.Classes != 102 {
		t.Fatalf("inferred spec %s with %d classes", sn.Spec.Name, sn.Spec.Classes)
	}
	for _, id := range parityIDs {
		t.Run(id, func(t *testing.T) {
			c := loadCase(t, dir, id)
			sub, err := sn.Extract(c.Config)
			if err != nil {
				t.Fatal(err)
			}
			x := testutil.ReadF32(t, filepath.Join(dir, c.Input.File))
			want := testutil.ReadF32(t, filepath.Join(dir, c.Logits.File))
			s := c.Input.Shape
			got, err := sub.Compile().Forward(context.Background(), x, s[0], s[2], s[3])
			if err != nil {
				t.Fatal(err)
			}
			if d := testutil.MaxAbsDiff(t, got, want); d > 1e-4 {
				t.Errorf("logits max abs diff %.3g > 1e-4", d)
			} else {
				t.Logf("logits max abs diff %.3g", d)
			}
			// One image at a time must give the same logits as the batch.
			one, err := sub.Compile().Forward(context.Background(), x[:len(x)/s[0]], 1, s[2], s[3])
			if err != nil {
				t.Fatal(err)
			}
			if d := testutil.MaxAbsDiff(t, one, want[:len(one)]); d > 1e-4 {
				t.Errorf("batch-1 logits max abs diff %.3g > 1e-4", d)
			}
		})
	}
}
