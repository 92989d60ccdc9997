package event

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Kind is the type of a JSON value.
type Kind uint8

// The kinds of JSON values.
const (
	Null Kind = iota
	Bool
	Number
	String
	Array
	Object
)

// Value is a parsed JSON value. Only the fields of its Kind are set.
type Value struct {
	Kind    Kind
	Bool    bool
	Num     float64
	Str     string
	Elems   []Value  // Array
	Members []Member // Object, in input order; Canonical sorts them
}

// Member is one name/value pair of a JSON object.
type Member struct {
	Key   string
	Value Value
}

// Get returns the value of the member named key of an object.
func (v *Value) Get(key string) (*Value, bool) {
	for i := range v.Members {
		if v.Members[i].Key == key {
			return &v.Members[i].Value, true
		}
	}
	return nil, false
}

// Limits of the parser.
const (
	// MaxDepth is the deepest nesting of arrays and objects accepted; the
	// top-level value is at depth 1.
	MaxDepth = 32
	// MaxJSONSize is the largest JSON text accepted, in bytes.
	MaxJSONSize = 1 << 20
	// MaxSafeInteger is the largest integer magnitude I-JSON (RFC 7493
	// section 2.2) lets an integer written without fraction or exponent
	// have: 2^53-1.
	MaxSafeInteger = 1<<53 - 1
)

// ErrInvalid is wrapped by every error of ParseJSON, Canonicalize and the
// event parsers: the input is not what this package accepts. The message
// names the field.
var ErrInvalid = errors.New("invalid")

// FieldError is an input error at a field. Path names the field as a
// dotted path from the top ("data.items[3].price"; "" for the top level).
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Unwrap makes a FieldError match ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// ParseJSON parses one JSON text (RFC 8259) strictly, for I-JSON (RFC
// 7493): it rejects invalid UTF-8, escaped lone surrogates, duplicate
// object keys, nesting deeper than MaxDepth, input over MaxJSONSize, numbers
// that do not fit an IEEE 754 double, and anything after the value but
// whitespace. With canonicalNumbers it also rejects every number not
// written exactly as RFC 8785 writes it, and integers written without
// fraction or exponent beyond MaxSafeInteger, so that the canonical form of
// the input keeps each number's text.
func ParseJSON(b []byte, canonicalNumbers bool) (*Value, error) {
	return parseJSON(b, "", canonicalNumbers)
}

// parseJSON is ParseJSON with the paths of errors starting at path.
func parseJSON(b []byte, path string, canonicalNumbers bool) (*Value, error) {
	if len(b) > MaxJSONSize {
		return nil, &FieldError{path, fmt.Sprintf("JSON of %d bytes exceeds %d", len(b), MaxJSONSize)}
	}
	if !utf8.Valid(b) {
		return nil, &FieldError{path, fmt.Sprintf("invalid UTF-8 at byte %d", invalidUTF8At(b))}
	}
	p := &parser{b: b, strict: canonicalNumbers}
	v, err := p.value(path, 1)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.b) {
		return nil, &FieldError{path, fmt.Sprintf("unexpected %s after the JSON value at byte %d", p.show(), p.i)}
	}
	return &v, nil
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

type parser struct {
	b      []byte
	i      int
	strict bool
}

func (p *parser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// show describes the input at the parser's position, for errors.
func (p *parser) show() string {
	if p.i >= len(p.b) {
		return "end of input"
	}
	r, _ := utf8.DecodeRune(p.b[p.i:])
	return strconv.QuoteRune(r)
}

func (p *parser) errorf(path, format string, a ...any) error {
	return &FieldError{path, fmt.Sprintf(format, a...)}
}

func (p *parser) value(path string, depth int) (Value, error) {
	p.space()
	if p.i >= len(p.b) {
		return Value{}, p.errorf(path, "unexpected end of input, want a value")
	}
	switch c := p.b[p.i]; {
	case c == '{' || c == '[':
		if depth > MaxDepth {
			return Value{}, p.errorf(path, "nested deeper than %d levels", MaxDepth)
		}
		if c == '{' {
			return p.object(path, depth)
		}
		return p.array(path, depth)
	case c == '"':
		s, err := p.str(path)
		return Value{Kind: String, Str: s}, err
	case c == '-' || c >= '0' && c <= '9':
		return p.number(path)
	case p.literal("true"):
		return Value{Kind: Bool, Bool: true}, nil
	case p.literal("false"):
		return Value{Kind: Bool}, nil
	case p.literal("null"):
		return Value{Kind: Null}, nil
	}
	return Value{}, p.errorf(path, "unexpected %s at byte %d, want a value", p.show(), p.i)
}

func (p *parser) literal(s string) bool {
	if strings.HasPrefix(string(p.b[p.i:min(len(p.b), p.i+len(s))]), s) {
		p.i += len(s)
		return true
	}
	return false
}

func (p *parser) object(path string, depth int) (Value, error) {
	p.i++ // '{'
	v := Value{Kind: Object, Members: []Member{}}
	seen := map[string]bool{}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return v, nil
	}
	for {
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return v, p.errorf(path, "unexpected %s at byte %d, want a quoted member name", p.show(), p.i)
		}
		key, err := p.str(path)
		if err != nil {
			return v, err
		}
		kpath := joinPath(path, key)
		// SPEC(RFC 7493 section 2.3): I-JSON objects MUST NOT have members
		// with duplicate names; RFC 8785 section 3.1 requires I-JSON.
		if seen[key] {
			return v, p.errorf(kpath, "duplicate key %q", key)
		}
		seen[key] = true
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return v, p.errorf(kpath, "unexpected %s at byte %d, want ':'", p.show(), p.i)
		}
		p.i++
		mv, err := p.value(kpath, depth+1)
		if err != nil {
			return v, err
		}
		v.Members = append(v.Members, Member{key, mv})
		p.space()
		if p.i < len(p.b) && p.b[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.b) && p.b[p.i] == '}' {
			p.i++
			return v, nil
		}
		return v, p.errorf(path, "unexpected %s at byte %d, want ',' or '}'", p.show(), p.i)
	}
}

func (p *parser) array(path string, depth int) (Value, error) {
	p.i++ // '['
	v := Value{Kind: Array, Elems: []Value{}}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return v, nil
	}
	for {
		ev, err := p.value(fmt.Sprintf("%s[%d]", path, len(v.Elems)), depth+1)
		if err != nil {
			return v, err
		}
		v.Elems = append(v.Elems, ev)
		p.space()
		if p.i < len(p.b) && p.b[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.b) && p.b[p.i] == ']' {
			p.i++
			return v, nil
		}
		return v, p.errorf(path, "unexpected %s at byte %d, want ',' or ']'", p.show(), p.i)
	}
}

// joinPath appends a member name to a field path. Names that are not
// simple words are quoted.
func joinPath(path, key string) string {
	simple := key != ""
	for _, r := range key {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			simple = false
			break
		}
	}
	if !simple {
		key = strconv.Quote(key)
		if len(key) > 40 {
			key = key[:37] + "...\""
		}
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// str parses a string at '"' and returns its value.
func (p *parser) str(path string) (string, error) {
	start := p.i
	p.i++
	var sb strings.Builder
	for {
		if p.i >= len(p.b) {
			return "", p.errorf(path, "unterminated string starting at byte %d", start)
		}
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return sb.String(), nil
		case c < 0x20:
			return "", p.errorf(path, "control character %#02x in a string at byte %d (escape it)", c, p.i)
		case c != '\\':
			// Copy a run of plain bytes (UTF-8 was checked up front).
			j := p.i
			for j < len(p.b) && p.b[j] != '"' && p.b[j] != '\\' && p.b[j] >= 0x20 {
				j++
			}
			sb.Write(p.b[p.i:j])
			p.i = j
			continue
		}
		// An escape.
		if p.i+1 >= len(p.b) {
			return "", p.errorf(path, "unterminated string starting at byte %d", start)
		}
		esc := p.b[p.i+1]
		p.i += 2
		switch esc {
		case '"', '\\', '/':
			sb.WriteByte(esc)
		case 'b':
			sb.WriteByte('\b')
		case 'f':
			sb.WriteByte('\f')
		case 'n':
			sb.WriteByte('\n')
		case 'r':
			sb.WriteByte('\r')
		case 't':
			sb.WriteByte('\t')
		case 'u':
			r, err := p.unicodeEscape(path)
			if err != nil {
				return "", err
			}
			sb.WriteRune(r)
		default:
			return "", p.errorf(path, "invalid escape \\%c at byte %d", esc, p.i-2)
		}
	}
}

// unicodeEscape reads the hex digits of a \u escape (p.i is after "\u"),
// and the low surrogate that must follow a high one.
func (p *parser) unicodeEscape(path string) (rune, error) {
	at := p.i - 2
	r, ok := p.hex4()
	if !ok {
		return 0, p.errorf(path, "invalid \\u escape at byte %d", at)
	}
	if !utf16.IsSurrogate(r) {
		return r, nil
	}
	// SPEC(RFC 7493 section 2.1): I-JSON strings MUST NOT contain escaped
	// lone surrogates; RFC 8785 section 3.2.2.2 cannot serialize them.
	if r < 0xdc00 && p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
		p.i += 2
		lo, ok := p.hex4()
		if ok && lo >= 0xdc00 && lo <= 0xdfff {
			return utf16.DecodeRune(r, lo), nil
		}
	}
	return 0, p.errorf(path, "lone surrogate in the \\u escape at byte %d", at)
}

func (p *parser) hex4() (rune, bool) {
	if p.i+4 > len(p.b) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 32)
	if err != nil || strings.ContainsAny(string(p.b[p.i:p.i+4]), "+-_xX") {
		return 0, false
	}
	p.i += 4
	return rune(n), true
}

// number parses a number at p.i, following RFC 8259's grammar.
func (p *parser) number(path string) (Value, error) {
	start := p.i
	digits := func() int {
		j := p.i
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
		}
		return p.i - j
	}
	bad := func() (Value, error) {
		return Value{}, p.errorf(path, "malformed number %q at byte %d", p.b[start:min(len(p.b), p.i+1)], start)
	}
	if p.b[p.i] == '-' {
		p.i++
	}
	intStart := p.i
	if n := digits(); n == 0 || n > 1 && p.b[intStart] == '0' {
		return bad()
	}
	plainInt := true
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		plainInt = false
		if digits() == 0 {
			return bad()
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		plainInt = false
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return bad()
		}
	}
	text := string(p.b[start:p.i])
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsInf(f, 0) {
		// SPEC(RFC 8785 section 3.2.2.3): numbers are IEEE 754 doubles.
		return Value{}, p.errorf(path, "number %s is out of the range of an IEEE 754 double", truncate(text))
	}
	if p.strict {
		if plainInt && math.Abs(f) > MaxSafeInteger {
			// SPEC(RFC 7493 section 2.2): integers beyond ±(2^53-1) are not
			// interoperable.
			return Value{}, p.errorf(path, "integer %s is beyond ±(2^53-1); send it as a string", truncate(text))
		}
		if c := string(appendNumber(nil, f)); c != text {
			return Value{}, p.errorf(path, "number %s is not in canonical form (RFC 8785); write %s", truncate(text), c)
		}
	}
	return Value{Kind: Number, Num: f}, nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}
