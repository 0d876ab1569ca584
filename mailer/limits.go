package mailer

import (
	"bytes"
	"errors"
	"fmt"
	htemplate "html/template"
	"io"
	"reflect"
	"strconv"
	ttemplate "text/template"
	"text/template/parse"
	"time"
)

// Template limits. A template is written by a marketer and executed for
// every recipient with their data, in previews and checks on the web
// server and in the send engine, so one template must not be able to pin a
// CPU or exhaust memory: {{range 50000000}}{{end}} writes nothing but runs
// for seconds, and {{printf "%010000000d" 0}} makes a 10 MB string in one
// call. Every execution goes through run (render.go), which applies them:
//
//   - steps: each {{range}} charges its number of iterations times the size
//     of its body (its actions and text, counted once when the template is
//     parsed) before it starts, so a loop over an integer, an attribute or a
//     transactional payload is refused before it runs, and nested loops
//     multiply; loops over integer literals are checked when the template is
//     parsed, so the save-time check already refuses them;
//   - output: a part (subject, text or HTML body) may not grow beyond
//     maxPartBytes;
//   - time: a part's execution stops at its next loop or write after
//     maxRenderTime;
//   - printf: widths and precisions above maxPrintfWidth are refused, as a
//     literal format when parsing and any format when executing.
//
// Templates that are only text and fields (straight templates, nearly all
// newsletters) need none of the machinery at run time: their cost is
// fixed when they are parsed, and the only check per message is the length
// of what they wrote.
const (
	maxSteps       = 1_000_000
	maxPartBytes   = 2 << 20
	maxRenderTime  = 2 * time.Second
	maxPrintfWidth = 1000
)

// ErrTemplateLimit is wrapped by every error that reports a template over
// one of the limits.
var ErrTemplateLimit = errors.New("template limit")

// limitError says which limit a template went over, and where.
type limitError struct {
	line int // 0 when unknown
	msg  string
}

func (e *limitError) Error() string {
	if e.line > 0 {
		return "line " + strconv.Itoa(e.line) + ": " + e.msg
	}
	return e.msg
}

func (e *limitError) Unwrap() error { return ErrTemplateLimit }

// Names of the functions bound adds to templates. The parser refuses
// function names it does not know, so a template cannot call them itself:
// they are added after parsing.
const (
	rangeFunc  = "_herald_range"
	printfFunc = "printf"
)

var boundFuncs = map[string]any{
	rangeFunc:  chargeRange,
	printfFunc: safePrintf,
	// The formatting built-ins, charged to the budget: their cost grows
	// with the data they format, and in an {{if}} they write nothing the
	// output limit could see.
	// (html, js and urlquery also grow with their input, but html/template
	// treats html and urlquery specially by name, and their cost is that of
	// the escaping every action gets anyway.)
	"_herald_printf": chargeFormat(func(a []any) (string, error) {
		if len(a) == 0 {
			return "", errors.New("printf needs a format text first")
		}
		f, ok := a[0].(string)
		if !ok {
			return "", errors.New("printf needs a format text first")
		}
		return safePrintf(f, a[1:]...)
	}),
	"_herald_print":   chargeFormat(func(a []any) (string, error) { return fmt.Sprint(a...), nil }),
	"_herald_println": chargeFormat(func(a []any) (string, error) { return fmt.Sprintln(a...), nil }),
}

// charged are the built-ins the main template calls through their
// _herald_ versions.
var charged = map[string]bool{"printf": true, "print": true, "println": true}

// boundText applies the limits to a parsed text template (see bound).
func boundText(t *ttemplate.Template) error {
	trees := map[string]*parse.Tree{}
	for _, x := range t.Templates() {
		trees[x.Name()] = x.Tree
	}
	if err := bound(t.Name(), trees); err != nil {
		return err
	}
	t.Funcs(boundFuncs)
	return nil
}

// boundHTML applies the limits to a parsed HTML template, before its
// first execution escapes it (see bound).
func boundHTML(t *htemplate.Template) error {
	trees := map[string]*parse.Tree{}
	for _, x := range t.Templates() {
		trees[x.Name()] = x.Tree
	}
	if err := bound(t.Name(), trees); err != nil {
		return err
	}
	t.Funcs(boundFuncs)
	return nil
}

// bound checks the templates of a parsed set against the limits and
// rewrites every {{range PIPE}} into {{range _herald_range $ cost line
// PIPE}}, which charges the loop to the execution's budget. The caller adds
// boundFuncs to the set. main is the name of the template executed.
func bound(main string, trees map[string]*parse.Tree) error {
	b := &bounder{trees: trees, weights: map[string]int64{}, visiting: map[string]bool{}}
	for name, t := range trees {
		if t == nil || t.Root == nil {
			continue
		}
		if name != main {
			if n := findRange(t.Root); n != nil {
				return &limitError{line: lineOf(t, n), msg: "{{range}} inside {{define}} or {{block}} is not supported; loop in the main template instead"}
			}
		}
		if err := b.check(t, t.Root, name == main); err != nil {
			return err
		}
	}
	t := trees[main]
	if t == nil || t.Root == nil {
		return nil
	}
	w, err := b.weight(main)
	if err != nil {
		return err
	}
	if w > maxSteps {
		return &limitError{msg: fmt.Sprintf("the template would run over the limit of %d steps per part (loops times the actions in them); make its loops shorter", maxSteps)}
	}
	return nil
}

type bounder struct {
	trees    map[string]*parse.Tree
	weights  map[string]int64 // static cost of a whole template, its calls included
	visiting map[string]bool  // templates on the call stack, to find recursion
}

// check refuses what the budget could not follow: assignments to $ (the
// loops find their budget through it) and printf formats over the limit.
// In the main template it makes the formatting built-ins their charged
// versions; templates it calls have no budget in $ and keep safePrintf.
func (b *bounder) check(t *parse.Tree, n parse.Node, main bool) error {
	var err error
	walk(n, func(n parse.Node) bool {
		switch n := n.(type) {
		case *parse.PipeNode:
			for _, v := range n.Decl {
				if len(v.Ident) > 0 && v.Ident[0] == "$" {
					err = &limitError{line: n.Line, msg: "$ cannot be assigned in a template"}
					return false
				}
			}
		case *parse.CommandNode:
			defer func() {
				if id, ok := n.Args[0].(*parse.IdentifierNode); ok && main && charged[id.Ident] {
					n.Args = append([]parse.Node{parse.NewIdentifier("_herald_" + id.Ident).SetTree(t).SetPos(id.Pos),
						&parse.VariableNode{NodeType: parse.NodeVariable, Pos: id.Pos, Ident: []string{"$"}}}, n.Args[1:]...)
				}
			}()
			if len(n.Args) >= 2 {
				if id, ok := n.Args[0].(*parse.IdentifierNode); ok && id.Ident == printfFunc {
					if s, ok := n.Args[1].(*parse.StringNode); ok {
						if e, ok := checkFormat(s.Text, nil).(*limitError); ok {
							err = &limitError{line: lineOf(t, n), msg: e.msg}
							return false
						}
					}
				}
			}
		}
		return true
	})
	return err
}

// weight is the static cost of template name: one per node, loops over
// integer literals multiplied by their count, other loops counted once (the
// budget charges them when they run), calls to other templates by the
// callee's weight. It also rewrites the template's loops, once.
func (b *bounder) weight(name string) (int64, error) {
	if w, ok := b.weights[name]; ok {
		return w, nil
	}
	t := b.trees[name]
	if t == nil || t.Root == nil {
		return 1, nil
	}
	if b.visiting[name] {
		return 0, &limitError{msg: fmt.Sprintf("template %q calls itself; templates may not recurse", name)}
	}
	b.visiting[name] = true
	defer delete(b.visiting, name)
	w, err := b.listWeight(t, t.Root, true)
	if err != nil {
		return 0, err
	}
	b.weights[name] = w
	return w, nil
}

func (b *bounder) listWeight(t *parse.Tree, l *parse.ListNode, static bool) (int64, error) {
	if l == nil {
		return 0, nil
	}
	var sum int64
	for _, n := range l.Nodes {
		w, err := b.nodeWeight(t, n, static)
		if err != nil {
			return 0, err
		}
		sum = satAdd(sum, w)
	}
	return sum, nil
}

// nodeWeight is n's cost; with static false, nested loops count as one
// (what a loop charges per iteration: the loops inside it charge
// themselves when they run).
func (b *bounder) nodeWeight(t *parse.Tree, n parse.Node, static bool) (int64, error) {
	switch n := n.(type) {
	case *parse.IfNode:
		return b.branchWeight(t, &n.BranchNode, static)
	case *parse.WithNode:
		return b.branchWeight(t, &n.BranchNode, static)
	case *parse.RangeNode:
		body, err := b.listWeight(t, n.List, false)
		if err != nil {
			return 0, err
		}
		body = max(body, 1)
		if !static {
			return 1, nil
		}
		full, err := b.listWeight(t, n.List, true)
		if err != nil {
			return 0, err
		}
		els, err := b.listWeight(t, n.ElseList, true)
		if err != nil {
			return 0, err
		}
		count := int64(1)
		if k, ok := intLiteral(n.Pipe); ok {
			count = max(k, 0)
			if satMul(count, body) > maxSteps {
				return 0, &limitError{line: n.Line, msg: fmt.Sprintf("a loop of %d iterations over %d actions is over the limit of %d steps per part", count, body, maxSteps)}
			}
		}
		b.rewriteRange(t, n, body)
		return satAdd(satAdd(1, satMul(count, max(full, 1))), els), nil
	case *parse.TemplateNode:
		w, err := b.weight(n.Name)
		if err != nil {
			return 0, err
		}
		return satAdd(1, w), nil
	case *parse.ListNode:
		return b.listWeight(t, n, static)
	default:
		return 1, nil
	}
}

func (b *bounder) branchWeight(t *parse.Tree, n *parse.BranchNode, static bool) (int64, error) {
	l, err := b.listWeight(t, n.List, static)
	if err != nil {
		return 0, err
	}
	e, err := b.listWeight(t, n.ElseList, static)
	if err != nil {
		return 0, err
	}
	return satAdd(1, satAdd(l, e)), nil
}

// rewriteRange makes n's pipeline {{range [decl :=] _herald_range $ cost
// line (PIPE)}}.
func (b *bounder) rewriteRange(t *parse.Tree, n *parse.RangeNode, cost int64) {
	p := n.Pipe
	if len(p.Cmds) == 1 && len(p.Cmds[0].Args) > 0 {
		if id, ok := p.Cmds[0].Args[0].(*parse.IdentifierNode); ok && id.Ident == rangeFunc {
			return // a template called twice is weighed once, but rewritten once too
		}
	}
	inner := &parse.PipeNode{NodeType: parse.NodePipe, Pos: p.Pos, Line: p.Line, Cmds: p.Cmds}
	num := func(v int64) *parse.NumberNode {
		return &parse.NumberNode{NodeType: parse.NodeNumber, Pos: p.Pos, IsInt: true, Int64: v, Text: strconv.FormatInt(v, 10)}
	}
	cmd := &parse.CommandNode{NodeType: parse.NodeCommand, Pos: p.Pos, Args: []parse.Node{
		parse.NewIdentifier(rangeFunc).SetTree(t).SetPos(p.Pos),
		&parse.VariableNode{NodeType: parse.NodeVariable, Pos: p.Pos, Ident: []string{"$"}},
		num(cost), num(int64(p.Line)), inner,
	}}
	p.Cmds = []*parse.CommandNode{cmd}
}

// intLiteral is the count of a {{range N}} over an integer literal.
func intLiteral(p *parse.PipeNode) (int64, bool) {
	if p == nil || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return 0, false
	}
	n, ok := p.Cmds[0].Args[0].(*parse.NumberNode)
	if !ok || !n.IsInt {
		return 0, false
	}
	return n.Int64, true
}

func satAdd(a, b int64) int64 {
	if a > maxSteps*1000 || b > maxSteps*1000 {
		return maxSteps * 1000
	}
	return a + b
}

func satMul(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	if a > maxSteps*1000/b {
		return maxSteps * 1000
	}
	return a * b
}

// walk calls f for n and every node below it, depth first, while f
// returns true.
func walk(n parse.Node, f func(parse.Node) bool) bool {
	if isNil(n) {
		return true
	}
	if !f(n) {
		return false
	}
	switch n := n.(type) {
	case *parse.ListNode:
		for _, c := range n.Nodes {
			if !walk(c, f) {
				return false
			}
		}
	case *parse.ActionNode:
		return walk(n.Pipe, f)
	case *parse.PipeNode:
		for _, c := range n.Cmds {
			if !walk(c, f) {
				return false
			}
		}
	case *parse.CommandNode:
		for _, c := range n.Args {
			if !walk(c, f) {
				return false
			}
		}
	case *parse.IfNode:
		return walkBranch(&n.BranchNode, f)
	case *parse.WithNode:
		return walkBranch(&n.BranchNode, f)
	case *parse.RangeNode:
		return walkBranch(&n.BranchNode, f)
	case *parse.TemplateNode:
		return walk(n.Pipe, f)
	case *parse.ChainNode:
		return walk(n.Node, f)
	}
	return true
}

func walkBranch(n *parse.BranchNode, f func(parse.Node) bool) bool {
	return walk(n.Pipe, f) && walk(n.List, f) && walk(n.ElseList, f)
}

// isNil reports whether n is nil, typed or not (a branch without else
// holds a nil *ListNode).
func isNil(n parse.Node) bool {
	if n == nil {
		return true
	}
	switch n := n.(type) {
	case *parse.ListNode:
		return n == nil
	case *parse.PipeNode:
		return n == nil
	}
	return false
}

func findRange(root *parse.ListNode) parse.Node {
	var found parse.Node
	walk(root, func(n parse.Node) bool {
		if _, ok := n.(*parse.RangeNode); ok {
			found = n
			return false
		}
		return true
	})
	return found
}

func lineOf(t *parse.Tree, n parse.Node) int {
	if r, ok := n.(*parse.RangeNode); ok {
		return r.Line
	}
	loc, _ := t.ErrorContext(n)
	// loc is "name:line:col".
	for i := len(loc) - 1; i >= 0; i-- {
		if loc[i] == ':' {
			rest := loc[:i]
			for j := len(rest) - 1; j >= 0; j-- {
				if rest[j] == ':' {
					l, _ := strconv.Atoi(rest[j+1:])
					return l
				}
			}
			break
		}
	}
	return 0
}

// budget is what one execution of a part may still use.
type budget struct {
	steps     int64
	deadline  time.Time
	writes    int
	formatted int   // bytes made by the formatting built-ins
	err       error // the limit that stopped the execution
}

func (b *budget) fail(err error) error {
	if b.err == nil {
		b.err = err
	}
	return err
}

func (b *budget) checkTime() error {
	if time.Now().After(b.deadline) {
		return b.fail(&limitError{msg: fmt.Sprintf("the template ran longer than the limit of %s per part", maxRenderTime)})
	}
	return nil
}

// chargeRange is {{range}}'s pipeline in a bounded template: it charges
// the loop's iterations times its body's cost and hands the value on.
func chargeRange(root any, cost, line int, v any) (any, error) {
	var b *budget
	switch d := root.(type) {
	case *TemplateData:
		b = d.budget
	}
	if b == nil {
		return nil, &limitError{line: line, msg: "loop outside a bounded execution"}
	}
	n := int64(1)
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n = max(rv.Int(), 0)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n = int64(min(rv.Uint(), maxSteps*1000))
	case reflect.Slice, reflect.Array, reflect.Map, reflect.String:
		n = int64(rv.Len())
	case reflect.Float32, reflect.Float64:
		// JSON numbers arrive as float64; text/template will refuse to
		// range over one, but charge it first in case a later version
		// does not.
		n = int64(min(max(rv.Float(), 0), maxSteps*1000))
	}
	c := satMul(n, int64(max(cost, 1)))
	if c > b.steps {
		return nil, b.fail(&limitError{line: line, msg: fmt.Sprintf("a loop of %d iterations would take the template over the limit of %d steps per part", n, maxSteps)})
	}
	b.steps -= c
	if err := b.checkTime(); err != nil {
		return nil, err
	}
	return v, nil
}

// boundedWriter stops a library execution at the output limit and, every
// few writes, at the deadline.
type boundedWriter struct {
	w    *bytes.Buffer
	left int
	b    budget
}

func (w *boundedWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		return 0, w.b.fail(&limitError{msg: fmt.Sprintf("the output is over the limit of %d MB per part", maxPartBytes>>20)})
	}
	w.b.writes++
	if w.b.writes&255 == 0 {
		if err := w.b.checkTime(); err != nil {
			return 0, err
		}
	}
	w.left -= len(p)
	return w.w.Write(p)
}

type executor interface {
	Execute(io.Writer, any) error
}

// executeBounded runs a template through the library with d's budget set
// and its output into w, capped.
func executeBounded(lib executor, w *bytes.Buffer, d *TemplateData) error {
	bw := &boundedWriter{w: w, left: maxPartBytes, b: budget{steps: maxSteps, deadline: time.Now().Add(maxRenderTime)}}
	prev := d.budget
	d.budget = &bw.b
	err := lib.Execute(bw, d)
	d.budget = prev
	if bw.b.err != nil {
		return bw.b.err // the limit, not text/template's wrapping of it
	}
	return err
}

// checkStraight is the only limit a straight template needs: its cost is
// fixed, and only its output grows with the data.
func checkStraight(n int) error {
	if n > maxPartBytes {
		return &limitError{msg: fmt.Sprintf("the output is over the limit of %d MB per part", maxPartBytes>>20)}
	}
	return nil
}

// maxFormatted is how many bytes the formatting built-ins may produce in
// one execution of a part.
const maxFormatted = 2 * maxPartBytes

// chargeFormat makes f a built-in that takes $ first and charges what it
// produces to the budget.
func chargeFormat(f func([]any) (string, error)) func(any, ...any) (string, error) {
	return func(root any, args ...any) (string, error) {
		d, _ := root.(*TemplateData)
		if d == nil || d.budget == nil {
			return "", &limitError{msg: "formatting outside a bounded execution"}
		}
		b := d.budget
		if err := b.checkTime(); err != nil {
			return "", err
		}
		s, err := f(args)
		if err != nil {
			return "", b.fail(err)
		}
		b.formatted += len(s)
		if b.formatted > maxFormatted {
			return "", b.fail(&limitError{msg: fmt.Sprintf("the template formats more than %d MB per part", maxFormatted>>20)})
		}
		return s, nil
	}
}

// safePrintf is fmt.Sprintf refusing widths and precisions that would
// allocate huge strings.
func safePrintf(format string, args ...any) (string, error) {
	if err := checkFormat(format, args); err != nil {
		return "", err
	}
	return fmt.Sprintf(format, args...), nil
}

// checkFormat refuses a printf format whose width or precision, written
// or taken from args with *, is over maxPrintfWidth. args nil: the format
// alone is checked, * accepted.
func checkFormat(format string, args []any) error {
	arg := 0
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		i++
		for i < len(format) && bytes.IndexByte([]byte("+-# 0"), format[i]) >= 0 {
			i++
		}
		for part := 0; part < 2 && i < len(format); part++ {
			if part == 1 {
				if format[i] != '.' {
					break
				}
				i++
			}
			if i < len(format) && format[i] == '[' {
				j := i + 1
				for j < len(format) && format[j] != ']' {
					j++
				}
				if k, err := strconv.Atoi(format[i+1 : min(j, len(format))]); err == nil {
					arg = k - 1
				}
				i = j + 1
			}
			if i < len(format) && format[i] == '*' {
				if args != nil {
					if arg < len(args) {
						if k, ok := args[arg].(int); ok && (k > maxPrintfWidth || k < -maxPrintfWidth) {
							return &limitError{msg: fmt.Sprintf("printf width %d is over the limit of %d", k, maxPrintfWidth)}
						}
					}
					arg++
				}
				i++
				continue
			}
			j := i
			for j < len(format) && format[j] >= '0' && format[j] <= '9' {
				j++
			}
			if j > i {
				k, err := strconv.Atoi(format[i:j])
				if err != nil || k > maxPrintfWidth {
					return &limitError{msg: fmt.Sprintf("printf width %s is over the limit of %d", format[i:j], maxPrintfWidth)}
				}
			}
			i = j
		}
		if i < len(format) && format[i] == '[' {
			j := i + 1
			for j < len(format) && format[j] != ']' {
				j++
			}
			if k, err := strconv.Atoi(format[i+1 : min(j, len(format))]); err == nil {
				arg = k - 1
			}
			i = j + 1
		}
		if i < len(format) && format[i] != '%' {
			arg++
		}
	}
	return nil
}
