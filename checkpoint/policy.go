package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Policy is a parsed witness policy (C2SP tlog-policy): the logs and
// witnesses it knows, and the quorum rule that the witnesses cosigning a
// checkpoint must meet.
type Policy struct {
	text      []byte // as parsed
	logs      []PolicyLog
	witnesses []Witness
	// nodes holds every witness and group, in definition order; a group
	// refers only to earlier nodes.
	nodes  []policyNode
	byName map[string]int // name -> index in nodes
	quorum int            // index in nodes, or -1 for "quorum none"
}

// policyNode is a witness (witness >= 0) or a group (k of members).
type policyNode struct {
	name    string
	witness int // index in witnesses, or -1 for a group
	k       int
	members []int // indexes in nodes
}

// Witness is a witness defined in a policy.
type Witness struct {
	// Name is the witness's name in the policy (used by groups and quorum).
	Name string
	// VKey is the witness's cosignature verifier key (Ed25519
	// cosignature/v1 or ML-DSA-44).
	VKey string
	// URL is the optional submission prefix URL ("" when absent).
	URL string
	// Verifier verifies the witness's cosignatures.
	Verifier note.Verifier
}

// PolicyLog is a log defined in a policy.
type PolicyLog struct {
	// VKey is the log's verifier key; its name is the log's origin.
	VKey string
	// URL is the optional log URL ("" when absent).
	URL string
	// Verifier verifies the log's checkpoint signatures.
	Verifier note.Verifier
}

// ParsePolicy parses a witness policy in the C2SP tlog-policy format:
//
//	log <vkey> [<url>]
//	witness <name> <vkey> [<url>]
//	group <name> <k|any|all> <member>...
//	quorum <name|none>
//
// Items are separated by spaces and tabs; blank lines and lines starting with
// "#" are ignored. Log keys are Ed25519 note keys, witness keys Ed25519
// cosignature/v1 keys (type 0x04) or ML-DSA-44 cosignature keys (type
// 0x06, tlog-cosignature). A group or quorum refers only to names defined on
// earlier lines; every name is used as a group member at most once; duplicate
// names or keys are refused; there must be exactly one quorum line. Errors
// name the line number and wrap ErrMalformed.
func ParsePolicy(text []byte) (*Policy, error) {
	if len(text) > MaxNoteSize {
		return nil, fmt.Errorf("policy of %d bytes exceeds %d: %w", len(text), MaxNoteSize, ErrMalformed)
	}
	p := &Policy{text: bytes.Clone(text), byName: make(map[string]int), quorum: -1}
	haveQuorum := false
	used := make(map[int]bool)      // nodes already listed as a group member
	keys := make(map[string]string) // public key bytes -> where defined
	for i, line := range bytes.Split(text, []byte("\n")) {
		n := i + 1
		// SPEC(tlog-policy): the only allowed control characters are tab
		// and newline.
		for _, c := range line {
			if c < 0x20 && c != '\t' || c == 0x7f {
				return nil, fmt.Errorf("policy line %d: control character %#x: %w", n, c, ErrMalformed)
			}
		}
		fields := strings.FieldsFunc(string(line), func(r rune) bool { return r == ' ' || r == '\t' })
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		var err error
		switch fields[0] {
		case "log":
			err = p.addLog(fields[1:], keys, n)
		case "witness":
			err = p.addWitness(fields[1:], keys, n)
		case "group":
			err = p.addGroup(fields[1:], used)
		case "quorum":
			if haveQuorum {
				err = fmt.Errorf("second quorum line")
				break
			}
			haveQuorum = true
			err = p.setQuorum(fields[1:])
		default:
			err = fmt.Errorf("unknown keyword %q", truncate(fields[0]))
		}
		if errors.Is(err, ErrMalformed) {
			return nil, fmt.Errorf("policy line %d: %w", n, err)
		}
		if err != nil {
			return nil, fmt.Errorf("policy line %d: %v: %w", n, err, ErrMalformed)
		}
	}
	if !haveQuorum {
		return nil, fmt.Errorf("policy has no quorum line: %w", ErrMalformed)
	}
	return p, nil
}

func (p *Policy) addLog(args []string, keys map[string]string, line int) error {
	if len(args) < 1 || len(args) > 2 {
		return fmt.Errorf("want \"log <vkey> [<url>]\"")
	}
	v, err := NewVerifier(args[0])
	if err != nil {
		return err
	}
	if err := dupKey(keys, args[0], fmt.Sprintf("log on line %d", line)); err != nil {
		return err
	}
	l := PolicyLog{VKey: args[0], Verifier: v}
	if len(args) == 2 {
		l.URL = args[1]
	}
	p.logs = append(p.logs, l)
	return nil
}

func (p *Policy) addWitness(args []string, keys map[string]string, line int) error {
	if len(args) < 2 || len(args) > 3 {
		return fmt.Errorf("want \"witness <name> <vkey> [<url>]\"")
	}
	name := args[0]
	if err := p.newName(name); err != nil {
		return err
	}
	v, err := NewCosignatureVerifier(args[1])
	if err != nil {
		return fmt.Errorf("witness %s: %w", name, err)
	}
	if err := dupKey(keys, args[1], fmt.Sprintf("witness on line %d", line)); err != nil {
		return err
	}
	for _, w := range p.witnesses {
		// Cosignatures are matched to witnesses by key name and ID.
		if w.Verifier.Name() == v.Name() && w.Verifier.KeyHash() == v.KeyHash() {
			return fmt.Errorf("witness %s has the same key name and ID as witness %s", name, w.Name)
		}
	}
	w := Witness{Name: name, VKey: args[1], Verifier: v}
	if len(args) == 3 {
		w.URL = args[2]
	}
	p.byName[name] = len(p.nodes)
	p.nodes = append(p.nodes, policyNode{name: name, witness: len(p.witnesses)})
	p.witnesses = append(p.witnesses, w)
	return nil
}

func (p *Policy) addGroup(args []string, used map[int]bool) error {
	if len(args) < 3 {
		return fmt.Errorf("want \"group <name> <k|any|all> <member>...\"")
	}
	name, kind, members := args[0], args[1], args[2:]
	if err := p.newName(name); err != nil {
		return err
	}
	g := policyNode{name: name, witness: -1}
	for _, m := range members {
		if m == "none" {
			return fmt.Errorf("group %s: \"none\" cannot be a member", name)
		}
		idx, ok := p.byName[m]
		if !ok {
			return fmt.Errorf("group %s: member %q is not defined on an earlier line", name, truncate(m))
		}
		// SPEC(tlog-policy): each defined name can be listed as a group
		// member at most once.
		if used[idx] {
			return fmt.Errorf("group %s: %s is already a member of a group", name, m)
		}
		used[idx] = true
		g.members = append(g.members, idx)
	}
	switch kind {
	case "any":
		g.k = 1
	case "all":
		g.k = len(members)
	default:
		k, err := parseDecimal(kind)
		// SPEC(tlog-policy): 1 <= k <= n.
		if err != nil || k < 1 || k > uint64(len(members)) {
			return fmt.Errorf("group %s: threshold %q is not \"any\", \"all\" or a number from 1 to %d", name, truncate(kind), len(members))
		}
		g.k = int(k)
	}
	p.byName[name] = len(p.nodes)
	p.nodes = append(p.nodes, g)
	return nil
}

func (p *Policy) setQuorum(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("want \"quorum <name>\"")
	}
	if args[0] == "none" {
		p.quorum = -1
		return nil
	}
	idx, ok := p.byName[args[0]]
	if !ok {
		return fmt.Errorf("quorum %q is not defined on an earlier line", truncate(args[0]))
	}
	p.quorum = idx
	return nil
}

// newName checks that name can be defined.
func (p *Policy) newName(name string) error {
	if name == "none" {
		return fmt.Errorf("the name \"none\" is reserved")
	}
	if _, ok := p.byName[name]; ok {
		return fmt.Errorf("name %q is already defined", truncate(name))
	}
	return nil
}

// dupKey refuses a second vkey that wraps the same public key.
// SPEC(tlog-policy): duplicate logs or witnesses (same public key, even
// under another name or key ID) are not allowed.
func dupKey(keys map[string]string, vkey, where string) error {
	_, _, raw, err := splitKey(vkey, false)
	if err != nil {
		return err
	}
	k := string(raw[1:])
	if prev, ok := keys[k]; ok {
		return fmt.Errorf("same public key as the %s", prev)
	}
	keys[k] = where
	return nil
}

// Text returns the policy's text as given to ParsePolicy.
func (p *Policy) Text() []byte { return bytes.Clone(p.text) }

// Witnesses returns the policy's witnesses in definition order.
func (p *Policy) Witnesses() []Witness { return append([]Witness(nil), p.witnesses...) }

// Logs returns the policy's logs in definition order.
func (p *Policy) Logs() []PolicyLog { return append([]PolicyLog(nil), p.logs...) }

// Verifiers returns every witness's cosignature verifier, to pass to Open.
func (p *Policy) Verifiers() []note.Verifier {
	vs := make([]note.Verifier, len(p.witnesses))
	for i, w := range p.witnesses {
		vs[i] = w.Verifier
	}
	return vs
}

// Cosigners returns the policy names of the witnesses whose cosignatures s
// carries (matched by key name and key ID), in policy order. Pass the result
// to Satisfied or Missing.
func (p *Policy) Cosigners(s *Signed) []string {
	var names []string
	for _, w := range p.witnesses {
		for _, c := range s.Cosignatures {
			if c.Name == w.Verifier.Name() && c.KeyHash == w.Verifier.KeyHash() {
				names = append(names, w.Name)
				break
			}
		}
	}
	return names
}

// Satisfied reports whether cosignatures by the named witnesses (policy
// names, as in Witness.Name) meet the quorum. "quorum none" is always
// satisfied.
func (p *Policy) Satisfied(cosigners []string) bool {
	if p.quorum < 0 {
		return true
	}
	return p.evaluate(cosigners)[p.quorum]
}

// evaluate computes, for every node, whether it is satisfied. Nodes refer
// only to earlier nodes, so one pass in order suffices.
func (p *Policy) evaluate(cosigners []string) []bool {
	signed := make(map[string]bool, len(cosigners))
	for _, c := range cosigners {
		signed[c] = true
	}
	ok := make([]bool, len(p.nodes))
	for i, n := range p.nodes {
		if n.witness >= 0 {
			ok[i] = signed[n.name]
			continue
		}
		count := 0
		for _, m := range n.members {
			if ok[m] {
				count++
			}
		}
		ok[i] = count >= n.k
	}
	return ok
}

// Missing returns the policy names of witnesses that have not cosigned and
// whose cosignature could help meet the quorum, in policy order; nil when
// the quorum is already met.
func (p *Policy) Missing(cosigners []string) []string {
	if p.Satisfied(cosigners) {
		return nil
	}
	ok := p.evaluate(cosigners)
	var missing []string
	var walk func(i int)
	walk = func(i int) {
		n := p.nodes[i]
		if ok[i] {
			return
		}
		if n.witness >= 0 {
			missing = append(missing, n.name)
			return
		}
		for _, m := range n.members {
			walk(m)
		}
	}
	walk(p.quorum)
	// Report in policy order.
	order := make(map[string]int, len(p.witnesses))
	for i, w := range p.witnesses {
		order[w.Name] = i
	}
	slices.SortFunc(missing, func(a, b string) int { return order[a] - order[b] })
	return missing
}
