package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
)

// Limits of the parser; a configuration file is small, so anything larger
// is a mistake (a binary file, a wrong path).
const (
	// MaxFileSize caps the configuration file in bytes.
	MaxFileSize = 1 << 20
	// MaxListItems caps the items of one list value.
	MaxListItems = 1024
)

// ErrSyntax is wrapped by every error about the file's content.
var ErrSyntax = errors.New("config: malformed configuration")

// Origin says where a key's effective value came from: "default",
// "file:LINE", "env NAME" or "flag --NAME".
type Origin = string

// Loaded is a configuration with the origin of every key.
type Loaded struct {
	Config
	// Origins maps a key name to where its value came from.
	Origins map[string]Origin
}

// NewLoaded returns the defaults, every key's origin "default".
func NewLoaded() *Loaded {
	l := &Loaded{Config: Default(), Origins: map[string]Origin{}}
	for _, k := range Keys() {
		l.Origins[k.Name] = "default"
	}
	return l
}

// LoadFile reads the configuration file at path over l.
func (l *Loaded) LoadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	// One byte over the cap tells a file that is too large from one that
	// fits exactly.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return fmt.Errorf("config: read %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return fmt.Errorf("%w: %s is larger than %d bytes", ErrSyntax, path, MaxFileSize)
	}
	return l.Parse(path, data)
}

// ApplyEnv applies the JSP_<SECTION>_<KEY> variables of environ
// ("NAME=value" pairs, as os.Environ returns) over l. A variable with the
// JSP_ prefix that names no key is ignored: JSP_ is shared with debug
// knobs and test settings.
func (l *Loaded) ApplyEnv(environ []string) error {
	byEnv := map[string]string{}
	for _, k := range Keys() {
		byEnv[k.Env] = k.Name
	}
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		key, ok := byEnv[name]
		if !ok {
			continue
		}
		if err := l.Set(key, value); err != nil {
			return fmt.Errorf("config: environment %s: %w", name, err)
		}
		l.Origins[key] = "env " + name
	}
	return nil
}

// Parse parses a configuration file's content over l; name is used in
// errors ("jsp.toml:12: gateway.drain_grace: ...").
func (l *Loaded) Parse(name string, data []byte) error {
	p := &parser{name: name, lines: strings.Split(string(data), "\n"), seen: map[string]int{}}
	for p.i = 0; p.i < len(p.lines); p.i++ {
		if err := p.line(l); err != nil {
			return err
		}
	}
	return nil
}

type parser struct {
	name    string
	lines   []string
	i       int    // index of the current line
	section string // current [section], "" before the first
	seen    map[string]int
}

func (p *parser) errf(format string, args ...any) error {
	return fmt.Errorf("%w: %s:%d: %s", ErrSyntax, p.name, p.i+1, fmt.Sprintf(format, args...))
}

func (p *parser) line(l *Loaded) error {
	s := strings.TrimSpace(stripComment(p.lines[p.i]))
	if s == "" {
		return nil
	}
	if strings.HasPrefix(s, "[") {
		if !strings.HasSuffix(s, "]") || strings.HasPrefix(s, "[[") {
			return p.errf("malformed section header %q", s)
		}
		sec := strings.TrimSpace(s[1 : len(s)-1])
		if !knownSection(sec) {
			return p.errf("unknown section [%s]", sec)
		}
		p.section = sec
		return nil
	}
	rawKey, rawVal, ok := strings.Cut(s, "=")
	if !ok {
		return p.errf("want key = value, got %q", s)
	}
	key := strings.TrimSpace(rawKey)
	if p.section == "" {
		return p.errf("key %q outside a [section]", key)
	}
	name := p.section + "." + key
	k := lookupKey(name)
	if k == nil {
		return p.errf("unknown key %s", name)
	}
	if first, dup := p.seen[name]; dup {
		return p.errf("%s: set twice (first on line %d)", name, first)
	}
	p.seen[name] = p.i + 1
	line := p.i
	v := reflect.ValueOf(&l.Config).Elem().FieldByIndex(k.path)
	if err := p.value(k, v, strings.TrimSpace(rawVal)); err != nil {
		return err
	}
	l.Origins[name] = fmt.Sprintf("file:%d", line+1)
	return nil
}

// knownSection reports whether sec is a section, or a table of keys with
// a dot within a section ("storage.sqlite").
func knownSection(sec string) bool {
	for _, k := range Keys() {
		if strings.HasPrefix(k.Name, sec+".") {
			return true
		}
	}
	return false
}

// value parses the value of key k into v. A list may continue on the
// following lines until its closing bracket.
func (p *parser) value(k *Key, v reflect.Value, raw string) error {
	if raw == "" {
		return p.errf("%s: missing value", k.Name)
	}
	if k.Type == "list" {
		if !strings.HasPrefix(raw, "[") {
			return p.errf("%s: want a list of strings such as [\"a\", \"b\"], got %s", k.Name, raw)
		}
		text, start := raw, p.i
		for !closedList(text) {
			if p.i+1 >= len(p.lines) {
				p.i = start // the error names the line the list opened on
				return p.errf("%s: list not closed with ]", k.Name)
			}
			p.i++
			text += " " + strings.TrimSpace(stripComment(p.lines[p.i]))
		}
		items, err := parseList(text)
		if err != nil {
			return p.errf("%s: %v", k.Name, err)
		}
		v.Set(reflect.ValueOf(items))
		return nil
	}
	switch k.Type {
	case "string", "duration":
		s, rest, err := parseString(raw)
		if err != nil {
			return p.errf("%s: want a quoted string, got %s", k.Name, raw)
		}
		if strings.TrimSpace(rest) != "" {
			return p.errf("%s: unexpected %q after the value", k.Name, rest)
		}
		if err := setScalar(v, k, s); err != nil {
			return p.errf("%v", err)
		}
	case "bool":
		// The file is TOML: a boolean is the bare word true or false; the
		// 1/0 that flags and the environment accept is a number here.
		word, rest, _ := strings.Cut(raw, " ")
		if strings.TrimSpace(rest) != "" {
			return p.errf("%s: unexpected %q after the value", k.Name, strings.TrimSpace(rest))
		}
		switch word {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			return p.errf("%s: want true or false, got %s", k.Name, raw)
		}
	default:
		if strings.HasPrefix(raw, "\"") || strings.HasPrefix(raw, "'") {
			return p.errf("%s: want a number, got a string %s", k.Name, raw)
		}
		if err := setScalar(v, k, raw); err != nil {
			return p.errf("%v", err)
		}
	}
	return nil
}

// stripComment removes a "#" comment that is not inside a string.
func stripComment(s string) string {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == 0 && c == '#':
			return s[:i]
		case quote == 0 && (c == '"' || c == '\''):
			quote = c
		case quote == '"' && c == '\\':
			i++
		case quote != 0 && c == quote:
			quote = 0
		}
	}
	return s
}

// closedList reports whether text holds the list's closing bracket outside
// a string.
func closedList(text string) bool {
	var quote byte
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case quote == 0 && c == ']':
			return true
		case quote == 0 && (c == '"' || c == '\''):
			quote = c
		case quote == '"' && c == '\\':
			i++
		case quote != 0 && c == quote:
			quote = 0
		}
	}
	return false
}

// parseList parses ["a", 'b', ] (a trailing comma allowed).
func parseList(text string) ([]string, error) {
	rest := strings.TrimSpace(text[1:])
	items := []string{}
	for {
		rest = strings.TrimSpace(rest)
		if strings.HasPrefix(rest, "]") {
			if tail := strings.TrimSpace(rest[1:]); tail != "" {
				return nil, fmt.Errorf("unexpected %q after the list", tail)
			}
			return items, nil
		}
		s, r, err := parseString(rest)
		if err != nil {
			return nil, fmt.Errorf("list items must be quoted strings: %w", err)
		}
		if len(items) == MaxListItems {
			return nil, fmt.Errorf("more than %d items", MaxListItems)
		}
		items = append(items, s)
		r = strings.TrimSpace(r)
		switch {
		case strings.HasPrefix(r, ","):
			rest = r[1:]
		case strings.HasPrefix(r, "]"):
			rest = r
		default:
			return nil, fmt.Errorf("want , or ] after %q", s)
		}
	}
}

// parseString parses one "basic" (with escapes) or 'literal' string at the
// start of s and returns it with the rest of s.
func parseString(s string) (string, string, error) {
	if s == "" {
		return "", "", errors.New("missing string")
	}
	switch s[0] {
	case '\'':
		end := strings.IndexByte(s[1:], '\'')
		if end < 0 {
			return "", "", errors.New("unterminated string")
		}
		return s[1 : 1+end], s[2+end:], nil
	case '"':
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '"':
				v, err := strconv.Unquote(s[:i+1])
				if err != nil {
					return "", "", fmt.Errorf("bad escape in %s", s[:i+1])
				}
				return v, s[i+1:], nil
			}
		}
		return "", "", errors.New("unterminated string")
	}
	return "", "", fmt.Errorf("not a quoted string: %s", s)
}
