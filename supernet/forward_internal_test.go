package supernet

import "testing"

func TestReleaseCalibrationBuffers(t *testing.T) {
	for range 3 {
		calibrationBuffers.Put(&workspace{})
	}
	ReleaseCalibrationBuffers()
	if v := calibrationBuffers.Get(); v != nil {
		t.Fatalf("the pool still holds %T", v)
	}
}
