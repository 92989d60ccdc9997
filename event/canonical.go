package event

import (
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Canonicalize returns the RFC 8785 (JCS) canonical form of the JSON text
// b: no whitespace, object members sorted by the UTF-16 code units of their
// names, strings with the fewest escapes, numbers as ECMAScript writes
// them. It accepts any number ParseJSON accepts without canonicalNumbers.
func Canonicalize(b []byte) ([]byte, error) {
	v, err := ParseJSON(b, false)
	if err != nil {
		return nil, err
	}
	return v.Canonical(), nil
}

// Canonical returns the RFC 8785 canonical form of v.
func (v *Value) Canonical() []byte { return appendValue(nil, v) }

func appendValue(dst []byte, v *Value) []byte {
	switch v.Kind {
	case Null:
		return append(dst, "null"...)
	case Bool:
		if v.Bool {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case Number:
		return appendNumber(dst, v.Num)
	case String:
		return appendString(dst, v.Str)
	case Array:
		dst = append(dst, '[')
		for i := range v.Elems {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendValue(dst, &v.Elems[i])
		}
		return append(dst, ']')
	}
	// SPEC(RFC 8785 section 3.2.3): members sorted by their names as
	// arrays of UTF-16 code units, compared as unsigned integers.
	ms := slices.Clone(v.Members)
	slices.SortFunc(ms, func(a, b Member) int { return compareUTF16(a.Key, b.Key) })
	dst = append(dst, '{')
	for i := range ms {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, ms[i].Key)
		dst = append(dst, ':')
		dst = appendValue(dst, &ms[i].Value)
	}
	return append(dst, '}')
}

// compareUTF16 compares a and b as sequences of UTF-16 code units.
func compareUTF16(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		a, b = a[na:], b[nb:]
		if ra == rb {
			continue
		}
		ua, ub := utf16Units(ra), utf16Units(rb)
		if c := slices.Compare(ua[:], ub[:]); c != 0 {
			return c
		}
	}
	switch {
	case a == "" && b == "":
		return 0
	case a == "":
		return -1
	}
	return 1
}

// utf16Units returns r as UTF-16: one code unit (then a zero) or a
// surrogate pair. Valid UTF-8 holds no surrogates, so a single unit never
// equals the first unit of a pair and the zero never decides.
func utf16Units(r rune) [2]uint16 {
	if r < 0x10000 {
		return [2]uint16{uint16(r), 0}
	}
	hi, lo := utf16.EncodeRune(r)
	return [2]uint16{uint16(hi), uint16(lo)}
}

// appendString appends s as a JSON string. SPEC(RFC 8785 section
// 3.2.2.2): '"' and '\' are escaped, so are the control characters below
// U+0020 (as \b, \t, \n, \f, \r or \u00xx in lowercase hex); everything else
// is written as is, in UTF-8.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\b':
			dst = append(dst, '\\', 'b')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\f':
			dst = append(dst, '\\', 'f')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// appendNumber appends f as ECMAScript's Number.prototype.toString writes
// it (ECMA-262, Number::toString), as RFC 8785 section 3.2.2.3 requires. f
// must be finite.
func appendNumber(dst []byte, f float64) []byte {
	if f == 0 { // also -0
		return append(dst, '0')
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}
	// The shortest decimal digits that round-trip, d.ddd × 10^exp; Go and
	// ECMAScript both choose the digits closest to f among the shortest.
	e := strconv.AppendFloat(nil, f, 'e', -1, 64)
	mant, exp := e, 0
	for i, c := range e {
		if c == 'e' {
			mant = e[:i]
			exp, _ = strconv.Atoi(string(e[i+1:]))
			break
		}
	}
	digits := make([]byte, 0, len(mant))
	for _, c := range mant {
		if c != '.' {
			digits = append(digits, c)
		}
	}
	k, n := len(digits), exp+1 // f = 0.digits × 10^n
	switch {
	case k <= n && n <= 21:
		dst = append(dst, digits...)
		for range n - k {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, digits[:n]...)
		dst = append(dst, '.')
		dst = append(dst, digits[n:]...)
	case -6 < n && n <= 0:
		dst = append(dst, '0', '.')
		for range -n {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	default:
		dst = append(dst, digits[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		if n-1 >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(n-1), 10)
	}
	return dst
}
