package demo

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Print writes the table and the summary line.
func Print(w io.Writer, res Result) {
	head := []string{"#", "who (process, user)", "what (endpoint, path)", "agent decision, reason", "host verdict", "HTTP", "result"}
	rows := [][]string{head}
	for i, r := range res.Rows {
		result := "pass"
		if !r.Pass {
			result = "FAIL: " + r.Why
		}
		rows = append(rows, []string{fmt.Sprint(i + 1), r.Who, r.What, r.Agent, r.Host, r.HTTP, result})
	}
	widths := make([]int, len(head))
	for _, row := range rows {
		for i, cell := range row[:len(row)-1] {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	for n, row := range rows {
		var b strings.Builder
		for i, cell := range row {
			if i == len(row)-1 {
				b.WriteString(cell)
				continue
			}
			b.WriteString(cell + strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell)) + "  ")
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
		if n == 0 {
			fmt.Fprintln(w, strings.Repeat("-", utf8.RuneCountInString(strings.TrimRight(b.String(), " "))))
		}
	}
	fmt.Fprintf(w, "demo: %d passed, %d failed (%.1f s)\n", res.Passed, res.Failed, res.Elapsed.Seconds())
}
