// Package audit records every request decision of the proxy: one JSON
// object per line in <logDir>/audit.jsonl, rotated and compressed by its
// own writer, and the in-memory summaries of agent.md §7.2 for the status
// document. It never records a key, a signature or a token: a line holds
// only Entry's fields, the caller's command line arrives redacted (package
// identity), and secrets in the client's request-target (a SAS sig=, a
// token= parameter) are redacted the same way when the line is written.
//
// Place on the data path: the proxy calls Log.Record once per finished
// request (and per rejected one); the status writer reads Log.Summaries
// every 60 s for proxyConnectionSummary and failedAuthenticateSummary
// (agent.md §9); the daemon can report Log.Stats.
//
// The file: keys exactly those of Entry, in its order, "time" in UTC with
// nine fraction digits, written through a logrus Logger whose formatter
// emits the entry alone (no msg or level: every line is the same kind of
// record, and the keys are a contract with the Azure Monitor table).
// audit.jsonl is 0640 and its directory 0750. When the next line would
// take audit.jsonl past 10 MiB it becomes audit.jsonl.1.gz (compressed in
// the background) and older ones shift up to audit.jsonl.4.gz; the oldest
// is deleted. A file left uncompressed by a crash is compressed at Open.
//
// Never blocking: Record hands the entry to one writer goroutine through a
// bounded queue and returns; a full queue drops the entry and counts it
// (Stats.Dropped). Write errors (a full disk) drop the lines concerned,
// are counted (Stats.Lost, WriteErrors, LastError) and reported once to the
// agent log until writes succeed again; the file is reopened on the next
// line. A failed compression deletes the rotated file rather than keep an
// unbounded amount of disk.
//
// Summaries count every request in 15-minute buckets kept 4 hours, keyed
// by userName, clientIp, ip, port, processFullPath, processCmdLine and
// responseStatus: allowed, exempt, audit-mode would-deny and rejected
// requests in proxyConnectionSummary; denies and audit-mode would-denies
// in failedAuthenticateSummary. Each bucket holds at most 1000 keys per set
// (the command line is the caller's choice); more are counted in
// Stats.SummaryOverflow.
package audit
