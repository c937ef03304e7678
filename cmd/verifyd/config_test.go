package main

import (
	"io"
	"testing"
)

// The PostgreSQL writers: one by default, the environment's number unless
// the flag says otherwise.
func TestDBWritersFlag(t *testing.T) {
	parse := func(env map[string]string, args ...string) config {
		t.Helper()
		c := defaultConfig()
		if err := c.flags("serve", func(k string) string { return env[k] }, io.Discard).Parse(args); err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := parse(nil); c.DBWriters != 1 {
		t.Errorf("default --db-writers = %d, want 1", c.DBWriters)
	}
	if c := parse(map[string]string{"VERIFYD_DB_WRITERS": "3"}); c.DBWriters != 3 {
		t.Errorf("VERIFYD_DB_WRITERS=3 gave %d", c.DBWriters)
	}
	if c := parse(map[string]string{"VERIFYD_DB_WRITERS": "3"}, "--db-writers", "0"); c.DBWriters != 0 {
		t.Errorf("--db-writers 0 over VERIFYD_DB_WRITERS=3 gave %d", c.DBWriters)
	}
}
