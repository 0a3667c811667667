package gateway

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/natgw/natgw/specializer"
	"github.com/natgw/natgw/task"
)

// pendingBudget finds a budget between the archive's subnets whose first answer announces
// a background search, and returns it with that answer.
func pendingBudget(t *testing.T, ts *testServer, tk *task.Task) (string, budgetAnswer) {
	t.Helper()
	lo, hi := specializer.Range(tk.Archive.Snapshot())
	for i := 1; i < 40; i++ {
		q := fmt.Sprintf("task=%s&madds=%d", tk.Name, lo.MAdds+(hi.MAdds-lo.MAdds)*int64(i)/40)
		var a budgetAnswer
		if res := ts.get(t, "/v1/models?"+q, &a); res.StatusCode != 200 {
			t.Fatalf("%s: status %d", q, res.StatusCode)
		}
		if a.Pending != nil {
			if a.Pending.State != specializer.PendingSearching {
				t.Fatalf("%s: first answer's pending %+v, want a search", q, a.Pending)
			}
			return q, a
		}
	}
	t.Fatal("no budget started a background search")
	return "", budgetAnswer{}
}

// waitFor asks again with Prefer: wait and returns the answer.
func waitFor(t *testing.T, ts *testServer, q string) budgetAnswer {
	t.Helper()
	req, _ := http.NewRequest("GET", ts.http.URL+"/v1/models?"+q, nil)
	req.Header.Set("Prefer", "respond-async, wait=60")
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var a budgetAnswer
	decode(t, res, &a)
	if res.StatusCode != 200 || res.Header.Get("Preference-Applied") != "wait=60" {
		t.Fatalf("Prefer: wait: status %d, Preference-Applied %q", res.StatusCode, res.Header.Get("Preference-Applied"))
	}
	if a.Pending != nil {
		t.Fatalf("after waiting %v the answer still has pending work %+v", time.Since(start), a.Pending)
	}
	return a
}

// measuredCandidate is the entry the background measured into the task's archive.
func measuredCandidate(t *testing.T, tk *task.Task) task.Entry {
	t.Helper()
	for _, e := range tk.Archive.Snapshot() {
		if e.Source == task.SourceResolve {
			if e.Predicted {
				t.Fatalf("measured candidate %+v", e)
			}
			return e
		}
	}
	t.Fatal("no candidate was measured into the archive")
	return task.Entry{}
}

// TestCandidateMeasuredBetterReplaces: a budget far from the archive's subnets is answered
// at once with the best measured fit while a candidate is searched for and measured in the
// background; a client that prefers to wait gets the candidate once it is measured better,
// with its model made from the statistics the measurement computed.
func TestCandidateMeasuredBetterReplaces(t *testing.T) {
	// Archive accuracies below anything a measurement gives (four classes, two val images
	// each): every candidate is measured better.
	tk := sparseTestTask(t, "sparse", func(madds int64) float64 { return float64(madds) / 1e10 })
	ts := newTestServer(t, Config{Tasks: []*task.Task{tk}, Search: specializer.TaskOptions{SearchTime: 50 * time.Millisecond,
		Calibration: task.Calibration{Images: 4, Batch: 2}}})
	q, first := pendingBudget(t, ts, tk)
	want, _ := specializer.Best(tk.Archive.Snapshot(), budgetOf(t, q))
	if first.Arch.Hash() != want.Hash {
		t.Fatalf("first answer %s, want the best measured fit %s", first.Arch.Hash()[:12], want.Hash[:12])
	}
	got := waitFor(t, ts, q)
	c := measuredCandidate(t, tk)
	if c.Top1 <= first.Accuracy.Top1 {
		t.Fatalf("candidate measured %.3f, not above %.3f: the test data should make it better", c.Top1, first.Accuracy.Top1)
	}
	if got.Accuracy.Top1 < c.Top1 || got.Accuracy.Split != task.SplitVal {
		t.Fatalf("answer after the candidate was measured at %.3f: %+v", c.Top1, got.Accuracy)
	}
	if got.Arch.Hash() == c.Hash && (got.Calibration == nil || *got.Calibration != (task.Calibration{Images: 4, Batch: 2})) {
		t.Fatalf("the candidate's model says calibration %+v, it was measured on 4 images in batches of 2", got.Calibration)
	}
	// Its model was made from the measured statistics: the file is served, no forward pass.
	if res := ts.get(t, got.ONNXURL, nil); res.StatusCode != 200 {
		t.Fatalf("candidate's model file: %d", res.StatusCode)
	}
	if _, _, ok := tk.Stats.Lookup(c.Hash); !ok {
		t.Fatal("the measured candidate's statistics were not kept with the task's")
	}
}

// TestCandidateMeasuredWorseNeverServed: a candidate measured worse than the answer never
// replaces it.
func TestCandidateMeasuredWorseNeverServed(t *testing.T) {
	tk := sparseTestTask(t, "sparse", func(madds int64) float64 { return 0.99 + float64(madds)/1e12 })
	ts := newTestServer(t, Config{Tasks: []*task.Task{tk}, Search: specializer.TaskOptions{SearchTime: 50 * time.Millisecond}})
	q, first := pendingBudget(t, ts, tk)
	got := waitFor(t, ts, q)
	c := measuredCandidate(t, tk)
	if c.Top1 >= first.Accuracy.Top1 {
		t.Fatalf("candidate measured %.3f, not below %.3f: the test data should make it worse", c.Top1, first.Accuracy.Top1)
	}
	if got.ID != first.ID {
		t.Fatalf("answer changed from %s to %s after a candidate measured worse", first.ID[:12], got.ID[:12])
	}
}

func budgetOf(t *testing.T, q string) specializer.Budget {
	var name string
	var m int64
	if _, err := fmt.Sscanf(q, "task=%6s&madds=%d", &name, &m); err != nil {
		t.Fatal(err)
	}
	return specializer.Budget{MAdds: m}
}

func TestPreferWait(t *testing.T) {
	for _, tc := range []struct {
		values []string
		want   time.Duration
	}{
		{nil, 0},
		{[]string{"wait=5"}, 5 * time.Second},
		{[]string{"respond-async, wait=10"}, 10 * time.Second},
		{[]string{"handling=lenient", "Wait = 3 ; x=y"}, 3 * time.Second},
		{[]string{`wait="7"`}, 7 * time.Second},
		{[]string{"wait=-1"}, 0},
		{[]string{"wait=abc"}, 0},
		{[]string{"wait"}, 0},
		{[]string{"wait=99999999999"}, 0},
	} {
		if got := preferWait(tc.values); got != tc.want {
			t.Errorf("preferWait(%q) = %v, want %v", tc.values, got, tc.want)
		}
	}
}
