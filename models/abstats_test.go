package models_test

import (
	"math"
	"strings"
	"testing"

	"github.com/herald-mail/herald/models"
)

func within(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// Known values: the Wilson intervals are those of Newcombe (1998), table
// I, cases 81/263, 15/148, 0/20 and 1/29; the z-tests were worked by hand
// (pooled standard error), p from the normal table.
func TestWilsonInterval(t *testing.T) {
	for _, c := range []struct {
		x, n   int64
		lo, hi float64
	}{
		{81, 263, 0.2553, 0.3662},
		{15, 148, 0.0624, 0.1605},
		{0, 20, 0, 0.1611},
		{1, 29, 0.0061, 0.1718},
	} {
		lo, hi := models.WilsonInterval(c.x, c.n, 1.959963984540054)
		if !within(lo, c.lo, 0.0001) || !within(hi, c.hi, 0.0001) {
			t.Errorf("WilsonInterval(%d, %d) = %.4f–%.4f, want %.4f–%.4f", c.x, c.n, lo, hi, c.lo, c.hi)
		}
	}
	if lo, hi := models.WilsonInterval(0, 0, 1.96); lo != 0 || hi != 1 {
		t.Errorf("WilsonInterval(0, 0) = %v–%v, want 0–1", lo, hi)
	}
}

func TestTwoProportionZ(t *testing.T) {
	for _, c := range []struct {
		x1, n1, x2, n2 int64
		z, p           float64
	}{
		// p1 = .12, p2 = .09, pooled .105: se = √(.105·.895·(2/1000)) = .013710.
		{120, 1000, 90, 1000, 2.1882, 0.02866},
		{90, 1000, 120, 1000, -2.1882, 0.02866},
		// 25/50 against 5/50: pooled .3, se = √(.3·.7·.04) = .091652, z = 4.3644.
		{25, 50, 5, 50, 4.3644, 1.275e-5},
		// 11/50 against 9/50: pooled .2, se = .08, z = 0.5.
		{11, 50, 9, 50, 0.5, 0.61708},
	} {
		z, p := models.TwoProportionZ(c.x1, c.n1, c.x2, c.n2)
		if !within(z, c.z, 0.0005) || !within(p, c.p, c.p*0.001+1e-7) {
			t.Errorf("TwoProportionZ(%d/%d, %d/%d) = z %.4f p %.5g, want z %.4f p %.5g", c.x1, c.n1, c.x2, c.n2, z, p, c.z, c.p)
		}
	}
	if z, p := models.TwoProportionZ(0, 50, 0, 50); z != 0 || p != 1 {
		t.Errorf("TwoProportionZ with no successes = %v, %v; want 0, 1", z, p)
	}
}

// The verdict names the better variant and says whether the difference
// is significant; on noise it says so, even though a best exists.
func TestAnalyseAB(t *testing.T) {
	clear := models.AnalyseAB(models.MetricClicks, []models.VariantResult{
		{Idx: 1, Label: "A", Sent: 50, Opens: 20, Clicks: 5},
		{Idx: 2, Label: "B", Sent: 50, Opens: 30, Clicks: 25},
	})
	if clear.Best != 2 || clear.RunnerUp != 1 || !clear.Significant || !strings.Contains(clear.Verdict, "is significant") {
		t.Errorf("clear difference: %+v", clear)
	}
	if v := clear.Variants[1]; v.Trials != 50 || v.Successes != 25 || v.Rate != 0.5 || v.Low >= 0.5 || v.High <= 0.5 {
		t.Errorf("variant B = %+v", v)
	}
	noise := models.AnalyseAB(models.MetricOpens, []models.VariantResult{
		{Idx: 1, Label: "A", Sent: 50, Opens: 11},
		{Idx: 2, Label: "B", Sent: 50, Opens: 9},
		{Idx: 3, Label: "C", Sent: 50, Opens: 10},
	})
	if noise.Best != 1 || noise.RunnerUp != 3 || noise.Significant || !strings.Contains(noise.Verdict, "not significant") {
		t.Errorf("noise: %+v", noise)
	}
	// Click-to-open: clickers among readers, a click counting as a read.
	cto := models.AnalyseAB(models.MetricCTO, []models.VariantResult{
		{Idx: 1, Label: "A", Sent: 100, Opens: 10, Clicks: 12},
		{Idx: 2, Label: "B", Sent: 100, Opens: 40, Clicks: 10},
	})
	if a := cto.Variants[0]; a.Trials != 12 || a.Successes != 12 || a.Rate != 1 {
		t.Errorf("CTO of A = %+v, want 12 of 12", a)
	}
	if cto.Best != 1 {
		t.Errorf("CTO best = %d, want 1", cto.Best)
	}
	empty := models.AnalyseAB(models.MetricClicks, []models.VariantResult{{Idx: 1, Label: "A"}, {Idx: 2, Label: "B"}})
	if empty.Significant || !strings.Contains(empty.Verdict, "No results yet") {
		t.Errorf("no sends: %+v", empty)
	}
}
