package importer

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// emit writes the configuration: a header, defaults and the services
// sorted by name, each under a comment naming its origin. yaml.v3 does the
// quoting, so that every string reads back as the same string.
func emit(header []string, defs *defaultsSection, svcs []*service) []byte {
	root := mapping()
	root.HeadComment = strings.Join(header, "\n")
	if len(defs.entries) > 0 {
		d := mapping()
		for _, e := range defs.entries {
			var v *yaml.Node
			switch x := e.val.(type) {
			case int:
				v = intNode(x)
			case string:
				v = str(x)
			case *rateLimit:
				v = rateNode(x)
			}
			addComment(d, e.key, v, e.comment, "")
		}
		add(root, "defaults", d)
	}
	sorted := slices.Clone(svcs)
	slices.SortFunc(sorted, func(a, b *service) int { return strings.Compare(a.name, b.name) })
	ss := mapping()
	for _, s := range sorted {
		comment := "from " + s.origin()
		if s.note != "" {
			comment += " " + s.note
		}
		addComment(ss, s.name, serviceNode(s), comment, "")
	}
	if len(sorted) == 0 {
		ss.Style = yaml.FlowStyle
	}
	add(root, "services", ss)

	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		// Nodes built here are always encodable; failing is a bug.
		panic(fmt.Sprintf("importer: encoding YAML: %v", err))
	}
	enc.Close()
	return buf.Bytes()
}

func serviceNode(s *service) *yaml.Node {
	m := mapping()
	if s.disabled {
		addComment(m, "disabled", boolNode(true), "", s.disabledWhy)
	}
	if len(s.listen) == 1 {
		add(m, "listen", str(s.listen[0]))
	} else {
		add(m, "listen", flowSeq(s.listen))
	}
	if s.mode != "" {
		add(m, "mode", str(s.mode))
	}
	switch {
	case s.exec != nil:
		add(m, "exec", flowSeq(s.exec))
		if s.argv0 != "" {
			add(m, "argv0", str(s.argv0))
		}
	case s.internal != "":
		add(m, "internal", str(s.internal))
	case s.redirect != "":
		add(m, "redirect", str(s.redirect))
	}
	if s.user != "" {
		addComment(m, "user", account(s.user), "", s.userComment)
	}
	if s.group != "" {
		add(m, "group", account(s.group))
	}
	if s.groupsSet {
		g := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, x := range s.groups {
			g.Content = append(g.Content, account(x))
		}
		add(m, "groups", g)
	}
	if len(s.env) > 0 {
		e := mapping()
		keys := make([]string, 0, len(s.env))
		for k := range s.env {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			add(e, k, str(s.env[k]))
		}
		add(m, "env", e)
	}
	if s.passEnv != nil {
		add(m, "pass_env", flowSeq(s.passEnv))
	}
	if s.umask != "" {
		add(m, "umask", str(s.umask))
	}
	if s.nice != nil {
		add(m, "nice", intNode(*s.nice))
	}
	if len(s.rlimits) > 0 {
		r := mapping()
		for _, kv := range s.rlimits {
			if n, err := strconv.ParseUint(kv.value, 10, 63); err == nil {
				add(r, kv.key, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatUint(n, 10)})
			} else {
				add(r, kv.key, str(kv.value))
			}
		}
		add(m, "rlimits", r)
	}
	if s.maxInstances != nil {
		add(m, "max_instances", intNode(*s.maxInstances))
	}
	if s.maxPerSource != nil {
		add(m, "max_per_source", intNode(*s.maxPerSource))
	}
	if s.rateLimit != nil {
		addComment(m, "rate_limit", rateNode(s.rateLimit), "", s.rateLimit.comment)
	}
	if s.allow != nil {
		add(m, "allow", flowSeq(s.allow))
	}
	if s.deny != nil {
		add(m, "deny", flowSeq(s.deny))
	}
	if s.accessTimes != nil {
		add(m, "access_times", flowSeq(s.accessTimes))
	}
	if len(s.socket) > 0 {
		o := mapping()
		for _, opt := range s.socket {
			switch v := opt.val.(type) {
			case bool:
				add(o, opt.key, boolNode(v))
			case int:
				add(o, opt.key, intNode(v))
			case string:
				add(o, opt.key, str(v))
			}
		}
		add(m, "socket", o)
	}
	return m
}

func rateNode(r *rateLimit) *yaml.Node {
	n := mapping()
	n.Style = yaml.FlowStyle
	add(n, "max", intNode(r.max))
	add(n, "per", str(r.per))
	if r.pause != "" {
		add(n, "pause", str(r.pause))
	}
	return n
}

func mapping() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"} }

func str(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func intNode(n int) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(n)}
}

func boolNode(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
}

// account writes a user or group: a number as an integer, which superd
// takes as an id, a name as a string.
func account(s string) *yaml.Node {
	if digitsOnly(s) {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: s}
	}
	return str(s)
}

func flowSeq(items []string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
	for _, it := range items {
		n.Content = append(n.Content, str(it))
	}
	return n
}

func add(m *yaml.Node, key string, val *yaml.Node) { addComment(m, key, val, "", "") }

// addComment adds key: val with a comment line above the key and one at
// the end of the line.
func addComment(m *yaml.Node, key string, val *yaml.Node, head, line string) {
	k := str(key)
	k.HeadComment = commentText(head)
	if line != "" {
		if val.Kind == yaml.ScalarNode || val.Style == yaml.FlowStyle {
			val.LineComment = commentText(line)
		} else {
			k.LineComment = commentText(line)
		}
	}
	m.Content = append(m.Content, k, val)
}

func commentText(s string) string {
	if s == "" {
		return ""
	}
	ls := strings.Split(s, "\n")
	for i, l := range ls {
		ls[i] = sanitizeComment(l)
	}
	for i, l := range ls {
		ls[i] = "# " + l
	}
	return strings.Join(ls, "\n")
}

func digitsOnly(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}
