// Package status is the agent's aggregate status document (agent.md §9):
// module statuses, the secure-channel states, the connection count and the
// request summaries, written atomically to <logDir>/status.json and served
// at /gpa-aggregated-status. The JSON shape is GPA's, so the extension and
// the "GuestProxyAgent instance view" read it unchanged; the project adds
// fields only inside `states` or as new top-level keys.
package status
