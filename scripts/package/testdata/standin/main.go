// Command standin is a tiny program the build test compiles in place of the
// real binaries, to check the build flags give reproducible output.
package main

import (
	"fmt"
	"os"
)

func main() { fmt.Println("standin", os.Args[1:]) }
