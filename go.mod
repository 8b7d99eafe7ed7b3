module github.com/mspguest/msp

go 1.26
