package config

import (
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultAdminListen is where the admin HTTP listener binds unless
// admin.listen says otherwise.
const DefaultAdminListen = "127.0.0.1:9750"

var topKeys = []string{"admin", "defaults", "include", "log", "services"}

// Load reads the configuration file at path and the files it includes and
// returns the validated Config. An invalid configuration yields Errors
// with every problem found; failing to read the main file yields that
// error as it is.
func Load(path string, opts Options) (*Config, error) {
	if opts.Glob == nil {
		opts.Glob = filepath.Glob
	}
	opts = opts.withDefaults()
	data, err := opts.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parse(path, data, opts)
}

// Parse is Load for a configuration already in memory; file names it in
// errors and anchors relative include patterns. Parse follows includes
// only when opts.Glob is set, so that it can run on untrusted input (a
// fuzzer's) without reading files; user and group names are still looked
// up through opts.Accounts.
func Parse(file string, data []byte, opts Options) (*Config, error) {
	return parse(file, data, opts.withDefaults())
}

// source is one service as written: its name key and body, in a file.
type source struct {
	name string
	f    field
}

func parse(file string, data []byte, opts Options) (*Config, error) {
	p := &parser{opts: opts, users: map[string]userResult{}, groups: map[string]groupResult{}, members: map[string]membersResult{}, creds: map[string]*Credential{}}
	cfg := &Config{
		File:  file,
		Log:   Log{Level: "info", Format: "console"},
		Admin: Admin{Listen: DefaultAdminListen},
	}
	var defaults []field
	var sources []source
	byName := map[string]source{}
	collect := func(f field) {
		entries, _ := p.entries(f, true)
		for _, e := range entries {
			name := e.key.Value
			e.path = join("services", name)
			if first, dup := byName[name]; dup {
				// Same-file duplicates are caught as duplicate keys.
				p.errKey(e, "service %q is already defined at %s", name, first.f.keyPos())
				continue
			}
			src := source{name: name, f: e}
			byName[name] = src
			sources = append(sources, src)
		}
	}

	root := p.document(file, data)
	if root != nil && root.Kind != yaml.MappingNode {
		p.errVal(field{file: file, val: root}, "the configuration must be a mapping with the keys %s; got %s", strings.Join(topKeys, ", "), what(root))
		root = nil
	}
	if root != nil {
		top := field{file: file, val: root}
		entries, _ := p.entries(top, false)
		var include, services *field
		for i := range entries {
			e := &entries[i]
			switch e.key.Value {
			case "log":
				p.logSection(*e, &cfg.Log)
			case "admin":
				p.adminSection(*e, &cfg.Admin)
			case "include":
				include = e
			case "defaults":
				defaults = p.defaultsSection(*e)
			case "services":
				services = e
			default:
				p.unknownKey(*e, e.key.Value, topKeys)
			}
		}
		if services != nil {
			collect(*services)
		}
		if include != nil {
			for _, inc := range p.includes(*include, file) {
				collect(inc)
			}
		}
	}

	drafts := make([]*draft, 0, len(sources))
	for _, src := range sources {
		drafts = append(drafts, p.service(src.name, src.f, defaults))
	}
	p.crossCheck(drafts)

	if len(p.errs) > 0 {
		return nil, p.errs.sorted()
	}
	cfg.Services = make([]*Service, len(drafts))
	for i, d := range drafts {
		s := d.svc
		s.pack()
		cfg.Services[i] = &s
	}
	slices.SortFunc(cfg.Services, func(a, b *Service) int { return strings.Compare(a.Name, b.Name) })
	return cfg, nil
}

func (p *parser) logSection(f field, l *Log) {
	entries, _ := p.entries(f, true)
	for _, e := range entries {
		switch e.key.Value {
		case "level":
			if v, ok := p.choice(e, "debug", "info", "warn", "error"); ok {
				l.Level = v
			}
		case "format":
			if v, ok := p.choice(e, "console", "json"); ok {
				l.Format = v
			}
		default:
			p.unknownKey(e, e.key.Value, []string{"format", "level"})
		}
	}
}

func (p *parser) adminSection(f field, a *Admin) {
	entries, _ := p.entries(f, true)
	for _, e := range entries {
		if e.key.Value != "listen" {
			p.unknownKey(e, e.key.Value, []string{"listen"})
			continue
		}
		s, ok := p.str(e)
		if !ok {
			continue
		}
		if s != "" && !p.hostPort(e, s, true, 0) {
			continue
		}
		a.Listen = s
	}
}

// includes expands the include globs, relative to the directory of the
// file that names them, and returns the services: map of each file found.
// A glob that matches nothing is fine: conf.d directories start empty.
func (p *parser) includes(f field, mainFile string) []field {
	items, _ := p.items(f, true)
	dir := filepath.Dir(mainFile)
	seen := map[string]bool{absPath(mainFile): true}
	var out []field
	for _, it := range items {
		written, ok := p.nonEmpty(it)
		if !ok {
			continue
		}
		pattern := written
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(dir, pattern)
		}
		if _, err := filepath.Match(pattern, ""); err != nil {
			p.errVal(it, "invalid glob %q: %v", written, err)
			continue
		}
		if p.opts.Glob == nil {
			continue
		}
		matches, err := p.opts.Glob(pattern)
		if err != nil {
			p.errVal(it, "expanding %q: %v", pattern, err)
			continue
		}
		for _, m := range matches {
			if seen[absPath(m)] {
				continue
			}
			seen[absPath(m)] = true
			data, err := p.opts.ReadFile(m)
			if err != nil {
				p.errVal(it, "reading included file: %v", err)
				continue
			}
			if svc, ok := p.includedFile(m, data); ok {
				out = append(out, svc)
			}
		}
	}
	return out
}

// includedFile reads one included file, which holds a services: map and
// nothing else: log, admin and defaults belong to the main file alone, so
// that no included file can change how the others are read.
func (p *parser) includedFile(file string, data []byte) (field, bool) {
	root := p.document(file, data)
	if root == nil {
		return field{}, false
	}
	top := field{file: file, val: root}
	if root.Kind != yaml.MappingNode {
		p.errVal(top, "an included file must be a mapping with the single key services; got %s", what(root))
		return field{}, false
	}
	entries, _ := p.entries(top, false)
	var svc field
	found := false
	for _, e := range entries {
		if e.key.Value == "services" {
			svc, found = e, true
			continue
		}
		if slices.Contains(topKeys, e.key.Value) {
			p.errKey(e, "not allowed in an included file, which holds only services:")
			continue
		}
		p.unknownKey(e, e.key.Value, []string{"services"})
	}
	return svc, found
}

// absPath names a file the same way however it was reached, so that a glob
// matching the main file (include: ["*.yaml"]) does not read it twice.
func absPath(name string) string {
	if abs, err := filepath.Abs(name); err == nil {
		return abs
	}
	return filepath.Clean(name)
}
