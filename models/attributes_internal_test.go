package models

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// TestScanFlatObjectMatchesJSON: whatever the text, scanFlatObject either
// declines it or reads exactly what json.Unmarshal reads.
func TestScanFlatObjectMatchesJSON(t *testing.T) {
	inputs := []string{`{}`, ` { } `, `{"a":"b"}`, `{"city":"Lyon","plan":"pro","points":42}`, `{"x":-0.5e+3,"y":true,"z":null,"w":false}`,
		`{"a":"é日本"}`, `{"a":1,"a":2}`, `{"n":1e400}`, `{"n":01}`, `{"n":1.}`, `{"n":-}`, `{"a":"\n"}`, `{"a":"x\"y"}`, `{"a":{"b":1}}`,
		`{"a":[1]}`, `{"a":"\xff"}`, `{"a":1,}`, `{"a" 1}`, `{"a":1}x`, `[1]`, `{"a":tru}`, `{"a":truex}`, `{"a":1 "b":2}`, `"s"`, ``}
	r := rand.New(rand.NewPCG(5, 6))
	pieces := []string{`{`, `}`, `"k"`, `"v"`, `:`, `,`, ` `, `1`, `-2.5`, `1e9`, `0`, `true`, `false`, `null`, `"é"`, `"\u00e9"`, `[`, `]`, `"\xff"`, `.`, `e`}
	for range 20000 {
		var b strings.Builder
		b.WriteString("{")
		for k := range r.IntN(5) {
			if k > 0 {
				b.WriteString(",")
			}
			b.WriteString(`"k` + string(rune('a'+r.IntN(3))) + `":`)
			b.WriteString([]string{`"v"`, `12`, `-0.25`, `3e-2`, `true`, `null`, `"a b"`, `"é"`}[r.IntN(8)])
		}
		b.WriteString("}")
		s := b.String()
		if r.IntN(3) == 0 { // damage it
			for range 1 + r.IntN(2) {
				p := r.IntN(len(s) + 1)
				s = s[:p] + pieces[r.IntN(len(pieces))] + s[p:]
			}
		}
		inputs = append(inputs, s)
	}
	fast := 0
	for _, in := range inputs {
		got, ok := scanFlatObject([]byte(in))
		if !ok {
			continue
		}
		fast++
		var want map[string]any
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Errorf("scanFlatObject(%q) = %v, but json.Unmarshal fails: %v", in, got, err)
			continue
		}
		if !reflect.DeepEqual(map[string]any(got), want) {
			t.Errorf("scanFlatObject(%q) = %#v, json.Unmarshal %#v", in, got, want)
		}
	}
	if fast < len(inputs)/2 {
		t.Errorf("the fast path read only %d of %d inputs", fast, len(inputs))
	}
}
