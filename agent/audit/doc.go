// Package audit records every request decision of the proxy: one JSON
// object per line in <logDir>/audit.jsonl, rotated and compressed by its
// own writer, and the in-memory summaries of agent.md §7.2 for the status
// document. It never records a key, a signature or a token.
package audit
