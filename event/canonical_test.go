package event

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRFC8785Vectors canonicalizes the published JCS test inputs and
// compares with the published outputs (testdata/README.md).
func TestRFC8785Vectors(t *testing.T) {
	ins, err := filepath.Glob("testdata/rfc8785/*.in.json")
	if err != nil || len(ins) < 6 {
		t.Fatalf("test vectors: %v, %d files", err, len(ins))
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in.json")
		t.Run(name, func(t *testing.T) {
			input, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(strings.TrimSuffix(in, ".in.json") + ".out.json")
			if err != nil {
				t.Fatal(err)
			}
			got, err := Canonicalize(input)
			if err != nil {
				t.Fatalf("Canonicalize: %v", err)
			}
			if string(got) != string(want) {
				t.Errorf("Canonicalize(%s)\n got %q\nwant %q", name, got, want)
			}
			// Canonical output is a fixed point, and passes the strict
			// (canonical numbers) parser unchanged.
			again, err := Canonicalize(got)
			if err != nil || string(again) != string(got) {
				t.Errorf("canonicalizing the output again: %q, %v", again, err)
			}
			if v, err := ParseJSON(got, true); err != nil || string(v.Canonical()) != string(got) {
				t.Errorf("strict parse of canonical output: %v", err)
			}
		})
	}
}

// TestNumbers checks number serialization against ECMAScript's own
// (testdata/es6numbers.txt), and that the strict parser accepts exactly
// the canonical text of each.
func TestNumbers(t *testing.T) {
	f, err := os.Open("testdata/es6numbers.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		hx, want, ok := strings.Cut(sc.Text(), ",")
		if !ok {
			t.Fatalf("bad line %q", sc.Text())
		}
		b, err := hex.DecodeString(hx)
		if err != nil || len(b) != 8 {
			t.Fatalf("bad line %q", sc.Text())
		}
		x := math.Float64frombits(binary.BigEndian.Uint64(b))
		if got := string(appendNumber(nil, x)); got != want {
			t.Errorf("%s (%g): got %s, want %s", hx, x, got, want)
		}
		v, err := ParseJSON([]byte(want), true)
		integer := !strings.ContainsAny(want, ".e")
		switch {
		case integer && math.Abs(x) > MaxSafeInteger:
			if err == nil {
				t.Errorf("strict parse of %s: accepted an integer beyond 2^53-1", want)
			}
		case err != nil:
			t.Errorf("strict parse of canonical %s: %v", want, err)
		case v.Num != x && !(x == 0 && v.Num == 0):
			t.Errorf("strict parse of %s = %g, want %g", want, v.Num, x)
		}
		n++
	}
	if err := sc.Err(); err != nil || n < 2000 {
		t.Fatalf("read %d vectors: %v", n, err)
	}
}

func TestParseJSONErrors(t *testing.T) {
	for _, tc := range []struct {
		in     string
		strict bool
		want   string // substring of the error
	}{
		{`{"a":1,"a":2}`, false, `a: duplicate key "a"`},
		{`{"x":{"b":[{"c":1,"c":1}]}}`, false, `x.b[0].c: duplicate key`},
		{"{\"a\":\"\xff\"}", false, "invalid UTF-8 at byte 6"},
		{`"\ud800"`, false, "lone surrogate"},
		{`"\udc00\ud800"`, false, "lone surrogate"},
		{`"\ud800\u0041"`, false, "lone surrogate"},
		{strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), false, "nested deeper than 32"},
		{`1e400`, false, "out of the range"},
		{`-1e400`, false, "out of the range"},
		{`01`, false, "malformed number"},
		{`1.`, false, "malformed number"},
		{`.5`, false, "want a value"},
		{`+1`, false, "want a value"},
		{`1e`, false, "malformed number"},
		{`[1,]`, false, "want a value"},
		{`{"a":1,}`, false, "want a quoted member name"},
		{`{"a" 1}`, false, "want ':'"},
		{`[1 2]`, false, "want ',' or ']'"},
		{`"a` + "\x01" + `"`, false, "control character"},
		{`"\x"`, false, "invalid escape"},
		{`"\u12G4"`, false, "invalid \\u escape"},
		{`{} {}`, false, "after the JSON value"},
		{``, false, "unexpected end of input"},
		{`nul`, false, "want a value"},
		{`1.0`, true, "not in canonical form (RFC 8785); write 1"},
		{`1E3`, true, "write 1000"},
		{`-0`, true, "write 0"},
		{`0.10000000000000001`, true, "write 0.1"},
		{`1e21`, true, "write 1e+21"},
		{`{"n":{"m":[9007199254740992]}}`, true, "n.m[0]: integer 9007199254740992 is beyond"},
		{`{"a b":1.50}`, true, `"a b": number 1.50`},
	} {
		_, err := ParseJSON([]byte(tc.in), tc.strict)
		if err == nil {
			t.Errorf("ParseJSON(%q, %v) accepted it", tc.in, tc.strict)
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseJSON(%q): error %v does not wrap ErrInvalid", tc.in, err)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseJSON(%q, %v) = %q, want it to contain %q", tc.in, tc.strict, err, tc.want)
		}
	}
}

func TestParseJSONAccepts(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{` { "b" : [ true , false , null ] , "a" : "\u00e9\/" } `, `{"a":"é/","b":[true,false,null]}`},
		{`"\ud83d\ude02"`, `"😂"`},
		{`"\u001f\u007f"`, `"\u001f` + "\x7f" + `"`},
		{strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth), strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)},
		{`-1.5e-7`, `-1.5e-7`},
		{`9007199254740991`, `9007199254740991`},
		{`{"\u20ac":1,"\ud83d\ude02":2,"\uffff":3}`, `{"€":1,"😂":2,"` + "\uffff" + `":3}`},
	} {
		v, err := ParseJSON([]byte(tc.in), false)
		if err != nil {
			t.Errorf("ParseJSON(%q): %v", tc.in, err)
			continue
		}
		if got := string(v.Canonical()); got != tc.want {
			t.Errorf("canonical form of %q = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCompareUTF16(t *testing.T) {
	// U+FFFF is one code unit 0xFFFF; U+1F602 is 0xD83D 0xDE02: in UTF-16
	// order the emoji sorts first, in code point order it would not.
	if c := compareUTF16("\U0001F602", "\uffff"); c >= 0 {
		t.Errorf("compareUTF16(U+1F602, U+FFFF) = %d, want < 0", c)
	}
	for _, tc := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"a", "", 1}, {"", "a", -1}, {"a", "ab", -1}, {"b", "ab", 1}, {"é", "é", 0}} {
		if got := compareUTF16(tc.a, tc.b); got != tc.want {
			t.Errorf("compareUTF16(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
