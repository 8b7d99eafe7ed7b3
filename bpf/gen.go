package bpf

// The committed proxy_bpfel.go and proxy_bpfel.o are generated from
// proxy.bpf.c by `make bpf` (scripts/bpf-generate.sh), which installs the
// pinned compiler below. -target bpfel gives one object for every
// little-endian architecture (amd64, arm64); bpf2go strips DWARF (keeping
// BTF) and maps the source directory to a relative path, so the output does
// not depend on where the tree is checked out.
//
// Pinned toolchain: Debian 12 clang-14 (14.0.6) and llvm-strip-14. A
// different clang produces a different object; change the version here and
// in scripts/bpf-generate.sh together, then commit the regenerated files.

//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -g -Wall -Werror" -target bpfel proxy proxy.bpf.c
