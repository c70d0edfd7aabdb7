// Package e2e holds sluice's end-to-end tests. TestMain builds the sluice
// binary once and every test runs it as a user would, with exec.Command,
// against real loopback backends written as small helpers in the test files.
// The package has no non-test code besides this comment.
package e2e
