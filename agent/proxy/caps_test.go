package proxy

import "testing"

// TestConnCapsReserveRoot: other users, each within the per-uid cap, fill
// the total only up to the root reserve (one user's cap, at most half the
// total); root takes the rest; unidentified connections count as others.
func TestConnCapsReserveRoot(t *testing.T) {
	tests := []struct {
		name              string
		maxConns, perUser int
		others            int // connections of distinct non-root users first
		wantOthers        int // how many of them are admitted
		wantRoot          int // then root connections admitted
	}{
		{"defaults", 1024, 64, 2000, 960, 64},
		{"small total", 10, 64, 20, 5, 5},
		{"one connection", 1, 1, 5, 1, 0},
		{"per-user cap above half", 100, 80, 200, 50, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := connCaps{perUID: map[uint32]int{}}
			lim := Limits{MaxConns: tt.maxConns, MaxConnsPerUser: tt.perUser}
			admitted := 0
			for i := range tt.others {
				if c.acquire(uint32(1000+i), i%7 != 0, lim) { // some without a record
					admitted++
				}
			}
			if admitted != tt.wantOthers {
				t.Errorf("others admitted %d; want %d", admitted, tt.wantOthers)
			}
			root := 0
			for range tt.maxConns + 1 {
				if c.acquire(0, true, lim) {
					root++
				}
			}
			if want := min(tt.wantRoot, tt.perUser); root != want {
				t.Errorf("root admitted %d; want %d", root, want)
			}
			if c.total > tt.maxConns {
				t.Errorf("total %d over the cap %d", c.total, tt.maxConns)
			}
		})
	}
}

// TestConnCapsBoundRefusals: at most the total cap of connections over a
// cap wait for their head; one finishing makes room for another.
func TestConnCapsBoundRefusals(t *testing.T) {
	c := connCaps{perUID: map[uint32]int{}}
	lim := Limits{MaxConns: 3, MaxConnsPerUser: 1}
	for i := range 3 {
		if !c.refuse(lim) {
			t.Fatalf("refusal %d not admitted", i)
		}
	}
	if c.refuse(lim) {
		t.Fatal("a fourth waiting refusal admitted; want the connection closed at once")
	}
	c.refused()
	if !c.refuse(lim) {
		t.Fatal("no room after one refusal finished")
	}
}
