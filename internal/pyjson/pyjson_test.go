package pyjson

import "testing"

func TestMarshal(t *testing.T) {
	v := struct {
		B string         `json:"b"`
		A []int          `json:"a"`
		M map[string]any `json:"m"`
	}{B: `x, "y": <z>\`, A: []int{1, 2}, M: map[string]any{"k": 1}}
	got, err := Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	// What python3 -c 'import json; print(json.dumps({"b": "x, \"y\": <z>\\", "a": [1, 2], "m": {"k": 1}}))' prints.
	want := `{"b": "x, \"y\": <z>\\", "a": [1, 2], "m": {"k": 1}}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
