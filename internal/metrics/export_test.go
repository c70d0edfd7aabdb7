package metrics

// Methods for tests only.

// Name returns the rule's name; empty for a nil *Rule.
func (r *Rule) Name() string {
	if r == nil {
		return ""
	}
	return r.name
}
