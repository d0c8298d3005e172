package control

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSocketMode(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "run", "veil.sock")
	l, err := Listen(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket mode %v, want 0600 socket", fi.Mode())
	}
	// A second daemon on the same socket is refused rather than stealing it.
	if _, err := Listen(sock, ""); err == nil {
		t.Error("second Listen on a live socket succeeded")
	}
}

func TestSocketGroup(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "veil.sock")
	l, err := Listen(sock, "0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, _ := os.Stat(sock)
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("mode %v, want 0660 with a control group", fi.Mode().Perm())
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "veil.sock")
	l, err := Listen(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	l.Close() // unix listener Close removes the file; recreate a stale one
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l2, err := Listen(sock, "")
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l2.Close()
}
