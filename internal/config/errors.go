package config

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem found in a configuration.
type Error struct {
	// File is the config file; empty in quick mode.
	File string
	// Line is the 1-based line the problem is on; 0 when not known.
	Line int
	// Column is the 1-based byte column; set only for TOML syntax errors.
	Column int
	// Message says what is wrong, starting with the rule it concerns
	// (`rule "web": backend "10.0.0.5": missing port`).
	Message string
}

// Error formats the problem as "file:line:col: message", leaving out the
// parts that are not known ("line 3: message" when there is no file name).
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "":
		b.WriteString(e.File)
	case e.Line > 0:
		b.WriteString("line")
	}
	if e.Line > 0 {
		sep := ":"
		if e.File == "" {
			sep = " "
		}
		b.WriteString(sep + strconv.Itoa(e.Line))
		if e.Column > 0 {
			b.WriteString(":" + strconv.Itoa(e.Column))
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// Errors is every problem found in a configuration, in file order. Parse,
// FromQuick and ValidateGlobals return it as a *Errors so that the caller can
// show all problems at once.
type Errors []*Error

// Error lists the problems one per line.
func (e *Errors) Error() string {
	lines := make([]string, len(*e))
	for i, err := range *e {
		lines[i] = err.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the individual problems, for errors.As and errors.Is.
func (e *Errors) Unwrap() []error {
	errs := make([]error, len(*e))
	for i, err := range *e {
		errs[i] = err
	}
	return errs
}

// collector gathers problems while a configuration is checked.
type collector struct {
	file  string
	index *index // nil when there is no document (quick mode)
	errs  Errors
}

// add records a problem at line (0 if unknown).
func (c *collector) add(line int, msg string) {
	c.errs = append(c.errs, &Error{File: c.file, Line: line, Message: msg})
}

// addf records a formatted problem at line (0 if unknown).
func (c *collector) addf(line int, format string, args ...any) {
	c.add(line, fmt.Sprintf(format, args...))
}

// err returns the problems sorted by line, or nil if there are none.
func (c *collector) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	errs := slices.Clone(c.errs)
	slices.SortStableFunc(errs, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
	return &errs
}
