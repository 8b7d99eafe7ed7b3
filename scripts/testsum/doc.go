// Command testsum runs `go test -json` commands one after another, prints
// what a reader needs (each package's result line, the whole output of
// every failed test, every skipped test with its reason) and ends with one
// line exactly of the form
//
//	N passed, N failed, N skipped
//
// counting every test and subtest of every run. It exits non-zero when a
// command fails, a test fails, a package fails outside any test (build
// error, panic, timeout), or, with -fail-on-skip, a test is skipped.
//
// Place: the test step of CI (.ci/run through `make test`); CI runs as
// root, where a skip means a feature the tests need is missing (issue 16
// item 3), so CI passes -fail-on-skip.
//
// Usage:
//
//	testsum [-fail-on-skip] -cmd 'go test -json -race ./...' [-cmd '...']
//
// A -cmd is split on white space (no shell quoting). The environment's
// TESTFLAGS and GOFLAGS are printed before the summary so that a narrowed
// run shows.
package main
