// Command package builds what this project ships, reproducibly: the same
// commit gives the same bytes.
//
//	go run ./scripts/package build -bins dist/build
//	go run ./scripts/package zip   -bins dist/build -out dist
//	go run ./scripts/package deb   -bins dist/build -out dist
//
// build compiles msp-handler, msp-agent and mspctl for linux/amd64 and
// linux/arm64 (CGO_ENABLED=0, -trimpath, -ldflags "-s -w -buildid=",
// -buildvcs=false) into <bins>/linux_<arch>/<name>.
//
// zip writes dist/<publisher>.<type>-<version>.zip (handler-contract.md
// §6.1) and a .sha256 beside it:
//
//	HandlerManifest.json
//	manifest.xml                 (when -manifest-xml is given)
//	bin/msp-handler              POSIX sh shim: runs bin/<arch>/msp-handler by `uname -m`
//	bin/amd64/{msp-handler,msp-agent,mspctl}
//	bin/arm64/{msp-handler,msp-agent,mspctl}
//	payload/msp-agent.service
//	payload/config.json          (when -config is given)
//	payload/schema/*.json
//
// The agent binary sits beside the handler binary of the same architecture.
// Entries are sorted, every mtime is SOURCE_DATE_EPOCH (or a fixed date),
// binaries and the shim are 0755, everything else 0644.
//
// deb writes dist/msp-agent_<version>_<arch>.deb per architecture with the
// agent at /usr/sbin/msp-agent, the unit at
// /usr/lib/systemd/system/msp-agent.service and the maintainer scripts in
// debian/ (enable; start only when systemd is PID 1; on removal stop and run
// `msp-agent --cleanup`). No config.json: the agent's defaults apply. The
// archive is written here rather than by dpkg-deb or nfpm so its bytes do not
// depend on the build machine's tools.
package main
